import type { Redis } from "ioredis";
import type { Keys } from "../shared/keys";
import { RedisScript } from "../shared/rate-limit";

export interface LockoutPolicy {
  /** Failures (within `maxMs` of each other) before the first lock. */
  threshold: number;
  baseMs: number;
  maxMs: number;
}

/**
 * Failed-login bookkeeping per subject (an account's e-mail digest, a client IP digest). From the
 * `threshold`-th failure on, each failure locks the subject for base * 2^(failures - threshold),
 * capped at max; a success clears the account. Redis in production, in-process in embedded mode;
 * both pass `test/auth/lockout.contract.test.ts`.
 */
export interface LockoutStore {
  /** Milliseconds until the subject may try again; 0 when it is not locked. */
  lockedFor(subject: string): Promise<number>;
  /** Records a failure and returns the lock it caused (0 below the threshold). */
  fail(subject: string, policy: LockoutPolicy): Promise<number>;
  clear(subject: string): Promise<void>;
}

export const lockMs = (failures: number, policy: LockoutPolicy): number =>
  failures < policy.threshold ? 0 : Math.min(policy.baseMs * 2 ** (failures - policy.threshold), policy.maxMs);

const FAIL = new RedisScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local threshold = tonumber(ARGV[1])
if n < threshold then return 0 end
local lock = math.min(tonumber(ARGV[2]) * 2 ^ (n - threshold), tonumber(ARGV[3]))
redis.call('SET', KEYS[2], '1', 'PX', lock)
return lock
`);

export class RedisLockoutStore implements LockoutStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async lockedFor(subject: string): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.keys.loginLock(subject)));
  }

  async fail(subject: string, policy: LockoutPolicy): Promise<number> {
    return Number(
      await FAIL.run(
        this.redis,
        [this.keys.loginFailures(subject), this.keys.loginLock(subject)],
        [policy.threshold, policy.baseMs, policy.maxMs],
      ),
    );
  }

  async clear(subject: string): Promise<void> {
    await this.redis.del(this.keys.loginFailures(subject), this.keys.loginLock(subject));
  }
}

export class MemoryLockoutStore implements LockoutStore {
  private readonly subjects = new Map<string, { failures: number; expiresAt: number; lockedUntil: number }>();

  async lockedFor(subject: string): Promise<number> {
    const state = this.subjects.get(subject);
    return state ? Math.max(0, state.lockedUntil - Date.now()) : 0;
  }

  async fail(subject: string, policy: LockoutPolicy): Promise<number> {
    const now = Date.now();
    const previous = this.subjects.get(subject);
    const failures = previous && previous.expiresAt > now ? previous.failures + 1 : 1;
    const lock = lockMs(failures, policy);
    this.subjects.set(subject, {
      failures,
      expiresAt: now + policy.maxMs,
      lockedUntil: lock > 0 ? now + lock : (previous?.lockedUntil ?? 0),
    });
    if (this.subjects.size > 100_000) this.sweep(now);
    return lock;
  }

  async clear(subject: string): Promise<void> {
    this.subjects.delete(subject);
  }

  private sweep(now: number): void {
    for (const [subject, state] of this.subjects) {
      if (state.expiresAt <= now && state.lockedUntil <= now) this.subjects.delete(subject);
    }
  }
}
