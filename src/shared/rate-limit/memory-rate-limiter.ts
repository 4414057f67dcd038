import { gcra, type RateDecision, type RateLimiter, type RateRule } from "./rate-limiter";

/** One process's limiter (embedded mode, and the fallback while Redis is unreachable). */
export class MemoryRateLimiter implements RateLimiter {
  /** key -> theoretical arrival time (ms, performance clock); dropped once it lies in the past. */
  private readonly tats = new Map<string, number>();
  private checks = 0;

  async check(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    const now = performance.timeOrigin + performance.now();
    if (++this.checks % 1024 === 0) this.sweep(now);
    const { tat, decision } = gcra(now, this.tats.get(key), rule, cost);
    if (tat !== undefined) this.tats.set(key, tat);
    return { ...decision, source: "local" };
  }

  async reset(key: string): Promise<void> {
    this.tats.delete(key);
  }

  /** A key whose tat has passed is equivalent to an absent one: keep memory bounded. */
  private sweep(now: number): void {
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
  }
}
