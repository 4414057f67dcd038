import { tooManyRequests } from "../shared/errors";
import type { Keys } from "../shared/keys";
import type { Redis } from "../shared/redis";

export interface QuotaDecision {
  allowed: boolean;
  /** Units left today after this call. */
  remaining: number;
  limit: number;
  /** Seconds until the quota resets (next UTC midnight). */
  resetS: number;
}

/** A per-subject daily counter; `consume` checks and counts in one atomic step. */
export interface QuotaCounter {
  consume(name: string, subject: string, limit: number, now?: Date): Promise<QuotaDecision>;
  /** Gives back one unit consumed on the same day, for work that failed on our side. */
  refund(name: string, subject: string, now?: Date): Promise<void>;
}

export const utcDay = (now: Date): string => now.toISOString().slice(0, 10);

export const secondsToMidnight = (now: Date): number => {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - now.getTime()) / 1000));
};

// Counts only when under the limit, so refused calls never eat into tomorrow's reading of today.
const CONSUME = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= tonumber(ARGV[1]) then return {0, current} end
current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, current}
`;

// Never below zero: a refund for a day whose key already expired changes nothing.
const REFUND = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > 0 then redis.call('DECR', KEYS[1]) end
`;

export class RedisQuotaCounter implements QuotaCounter {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async consume(name: string, subject: string, limit: number, now = new Date()): Promise<QuotaDecision> {
    const resetS = secondsToMidnight(now);
    const key = this.keys.quota(name, subject, utcDay(now));
    // The key outlives its day by an hour so a slow clock on one replica cannot reopen it.
    const [allowed, count] = (await this.redis.eval(CONSUME, 1, key, limit, resetS + 3600)) as [number, number];
    return { allowed: allowed === 1, remaining: Math.max(0, limit - count), limit, resetS };
  }

  async refund(name: string, subject: string, now = new Date()): Promise<void> {
    await this.redis.eval(REFUND, 1, this.keys.quota(name, subject, utcDay(now)));
  }
}

/** Embedded mode: one process, so a map is atomic enough. */
export class MemoryQuotaCounter implements QuotaCounter {
  private readonly counts = new Map<string, number>();

  /** Ends with the day, which is how `consume` finds the keys of other days to drop. */
  private static key(name: string, subject: string, day: string): string {
    return `${name}:${subject}:${day}`;
  }

  async consume(name: string, subject: string, limit: number, now = new Date()): Promise<QuotaDecision> {
    const day = utcDay(now);
    const key = MemoryQuotaCounter.key(name, subject, day);
    for (const existing of this.counts.keys()) if (!existing.endsWith(day)) this.counts.delete(existing);
    const current = this.counts.get(key) ?? 0;
    const resetS = secondsToMidnight(now);
    if (current >= limit) return { allowed: false, remaining: 0, limit, resetS };
    this.counts.set(key, current + 1);
    return { allowed: true, remaining: limit - current - 1, limit, resetS };
  }

  async refund(name: string, subject: string, now = new Date()): Promise<void> {
    const key = MemoryQuotaCounter.key(name, subject, utcDay(now));
    const current = this.counts.get(key) ?? 0;
    if (current > 0) this.counts.set(key, current - 1);
  }
}

/** Throws the 429 `quota_exceeded` with Retry-After and the IETF RateLimit headers. */
export function assertQuota(decision: QuotaDecision, what: string): void {
  const policy = `${decision.limit};w=86400`;
  if (decision.allowed) return;
  throw tooManyRequests("quota_exceeded", `daily ${what} quota of ${decision.limit} reached`, {
    "retry-after": String(decision.resetS),
    "ratelimit-policy": policy,
    ratelimit: `limit=${decision.limit}, remaining=0, reset=${decision.resetS}`,
  });
}
