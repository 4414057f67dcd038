import type { Keys } from "../shared/keys";
import type { Logger } from "../shared/logger";
import type { Redis } from "../shared/redis";
import { withTimeout } from "../shared/timeout";
import { type QuotaCounter, type QuotaDecision, secondsToMidnight, utcDay } from "./quota";

/** Units counted by this instance alone, to be added to Redis once it answers again. */
interface LocalTally {
  name: string;
  subject: string;
  day: string;
  /** The count Redis last reported for this subject and day (0 if never seen). */
  seen: number;
  /** Consumed here while Redis was unreachable, minus refunds of those; not in Redis yet. */
  pending: number;
}

// Adds what one instance counted alone; never below zero, and a new key gets the day's expiry.
const ADD = `
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
if current < 0 then redis.call('SET', KEYS[1], 0) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return current
`;

/** Subjects remembered at most: the seen counts are a cache, an old entry is only a lost head start. */
const MAX_TALLIES = 100_000;

/**
 * The daily quota with the rate limiter's outage policy (degrade, do not fail): while Redis is
 * unreachable each instance counts on its own, starting from the count Redis last reported for that
 * user, so someone at their limit stays refused and nobody's chat fails because of the counter. With
 * N chat replicas a user may get up to N times their remaining units during the outage. When Redis
 * answers again, every unit counted alone is added to the shared counter (logged), so the day's
 * total is right afterwards.
 */
export class FallbackQuotaCounter implements QuotaCounter {
  private readonly tallies = new Map<string, LocalTally>();
  /** Keys of tallies whose `pending` is not zero: what the next reconcile has to add. */
  private readonly unsettled = new Set<string>();
  private lastWarned = 0;

  constructor(
    private readonly shared: QuotaCounter,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly options: {
      /** False while Redis is known to be down: count locally without waiting. */
      isAvailable: () => boolean;
      timeoutMs: number;
      logger: Logger;
      onFallback?: () => void;
    },
  ) {}

  async consume(name: string, subject: string, limit: number, now = new Date()): Promise<QuotaDecision> {
    const tally = this.tally(name, subject, now);
    if (this.options.isAvailable()) {
      try {
        await this.reconcile();
        const decision = await withTimeout(
          this.shared.consume(name, subject, limit, now),
          this.options.timeoutMs,
          "quota",
        );
        tally.seen = decision.limit - decision.remaining;
        return decision;
      } catch (error) {
        return this.degrade(tally, limit, now, (error as Error).message);
      }
    }
    return this.degrade(tally, limit, now, "redis unavailable");
  }

  async refund(name: string, subject: string, now = new Date()): Promise<void> {
    const tally = this.tally(name, subject, now);
    if (tally.pending > 0) return this.addPending(tally, -1);
    try {
      if (!this.options.isAvailable()) throw new Error("redis unavailable");
      await withTimeout(this.shared.refund(name, subject, now), this.options.timeoutMs, "quota refund");
    } catch {
      this.addPending(tally, -1);
    }
  }

  /** Adds every locally counted unit to Redis; stops at the first failure and keeps the rest. */
  async reconcile(): Promise<void> {
    for (const key of this.unsettled) {
      const tally = this.tallies.get(key);
      if (!tally) continue;
      const now = new Date();
      // As `consume` sets it: the day's key outlives its day by an hour.
      const ttl = tally.day === utcDay(now) ? secondsToMidnight(now) + 3600 : 3600;
      const redisKey = this.keys.quota(tally.name, tally.subject, tally.day);
      await withTimeout(this.redis.eval(ADD, 1, redisKey, tally.pending, ttl), this.options.timeoutMs, "quota");
      this.options.logger.info(
        { quota: tally.name, units: tally.pending, day: tally.day },
        "quota units counted during a Redis outage added to the shared counter",
      );
      tally.pending = 0;
      this.unsettled.delete(key);
      if (tally.day !== utcDay(now)) this.tallies.delete(key);
    }
  }

  private degrade(tally: LocalTally, limit: number, now: Date, why: string): QuotaDecision {
    this.options.onFallback?.();
    const at = Date.now();
    if (at - this.lastWarned > 5000) {
      this.lastWarned = at;
      this.options.logger.warn({ why }, "daily quota degraded to per-instance counting");
    }
    const used = tally.seen + Math.max(0, tally.pending);
    const resetS = secondsToMidnight(now);
    if (used >= limit) return { allowed: false, remaining: 0, limit, resetS };
    this.addPending(tally, 1);
    return { allowed: true, remaining: limit - used - 1, limit, resetS };
  }

  private addPending(tally: LocalTally, units: number): void {
    tally.pending += units;
    const key = tallyKey(tally.name, tally.subject, tally.day);
    if (tally.pending === 0) this.unsettled.delete(key);
    else this.unsettled.add(key);
  }

  private tally(name: string, subject: string, now: Date): LocalTally {
    const day = utcDay(now);
    const key = tallyKey(name, subject, day);
    let tally = this.tallies.get(key);
    if (!tally) {
      if (this.tallies.size >= MAX_TALLIES) this.forgetSettled();
      tally = { name, subject, day, seen: 0, pending: 0 };
      this.tallies.set(key, tally);
    }
    return tally;
  }

  /** Drops tallies with nothing to reconcile: only their head start is lost. */
  private forgetSettled(): void {
    for (const key of this.tallies.keys()) if (!this.unsettled.has(key)) this.tallies.delete(key);
  }
}

const tallyKey = (name: string, subject: string, day: string) => `${name}:${subject}:${day}`;
