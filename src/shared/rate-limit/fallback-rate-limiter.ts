import type { Logger } from "../logger";
import { withTimeout } from "../timeout";
import type { RateDecision, RateLimiter, RateRule } from "./rate-limiter";

/**
 * The policy while Redis is unreachable (decided: degrade, do not fail open or closed): each
 * instance keeps enforcing the same rules on its own in-process limiter. With N replicas a user
 * may get up to N times the limit for the duration of the outage; nobody gets unlimited access and
 * no request fails because of the limiter. A check never waits longer than `timeoutMs` on Redis.
 */
export class FallbackRateLimiter implements RateLimiter {
  private lastWarned = 0;

  constructor(
    private readonly shared: RateLimiter,
    private readonly local: RateLimiter,
    private readonly options: {
      /** False while the shared store is known to be down: skip it without waiting. */
      isAvailable: () => boolean;
      timeoutMs: number;
      logger: Logger;
      onFallback?: () => void;
    },
  ) {}

  async check(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    if (!this.options.isAvailable()) return this.degrade(key, rule, cost, "redis unavailable");
    try {
      return await withTimeout(this.shared.check(key, rule, cost), this.options.timeoutMs, "rate limiter");
    } catch (error) {
      return this.degrade(key, rule, cost, (error as Error).message);
    }
  }

  async reset(key: string): Promise<void> {
    await this.local.reset(key);
    if (this.options.isAvailable()) await this.shared.reset(key).catch(() => {});
  }

  private degrade(key: string, rule: RateRule, cost: number, why: string): Promise<RateDecision> {
    this.options.onFallback?.();
    const now = Date.now();
    if (now - this.lastWarned > 5000) {
      this.lastWarned = now;
      this.options.logger.warn({ why }, "rate limiter degraded to per-instance limits");
    }
    return this.local.check(key, rule, cost);
  }
}
