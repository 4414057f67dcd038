import type { Keys } from "../shared/keys";
import { RedisScript } from "../shared/rate-limit";
import type { Redis } from "../shared/redis";

export interface LockoutPolicy {
  /** Failures (remembered for `windowMs` after the last one) before the first lock. */
  threshold: number;
  baseMs: number;
  maxMs: number;
  /** How long failures are remembered after the last one; `maxMs` when unset. */
  windowMs?: number;
}

/** One counter a sign-in attempt is checked against and counted in (an opaque digest, never raw input). */
export interface LockoutSubject {
  key: string;
  policy: LockoutPolicy;
  /**
   * A success forgets this subject's failures (the others only age out), unless other attempts of
   * it are in flight: then they and the failures stand, so guesses cannot hide behind a right one.
   */
  clearOnSuccess?: boolean;
}

export type Reservation = { granted: true; id: string } | { granted: false; retryMs: number };

/** How a reserved attempt ended: `abandoned` (an error before a verdict) frees it without counting. */
export type AttemptOutcome = "failure" | "success" | "abandoned";

/**
 * Failed sign-in bookkeeping per subject. From the `threshold`-th failure on, each failure locks the
 * subject for base * 2^(failures - threshold), capped at max.
 *
 * Checking and counting are one atomic step: an attempt is reserved in every subject before any
 * password work, and a subject refuses a reservation while it is locked, or while the failures it
 * has plus the attempts in flight already reach its threshold. So parallel guesses get at most
 * `threshold` wrong passwords verified before the lock, never one per request (a success frees its
 * place without counting). A reservation of a process that died expires after `RESERVATION_MS`.
 * Redis in production, in-process in embedded mode; both pass the contract in
 * `test/auth/lockout.test.ts`.
 */
export interface LockoutStore {
  /** Reserves one attempt in every subject, or in none (refused with the longest wait). */
  reserve(subjects: LockoutSubject[]): Promise<Reservation>;
  /** Ends a reservation; returns the lock a failure caused (0 when none). */
  settle(subjects: LockoutSubject[], id: string, outcome: AttemptOutcome): Promise<number>;
  /** Milliseconds until the subject may try again; 0 when it is not locked. */
  lockedFor(key: string): Promise<number>;
  /** Forgets the failures and lock of these subjects (a password reset proved the mailbox's owner). */
  forget(keys: string[]): Promise<void>;
}

/** Longest a reservation holds its place when its attempt never settles (a crashed process). */
export const RESERVATION_MS = 60_000;
/** Retry-After for an attempt refused because others that could reach the threshold are in flight. */
export const BUSY_RETRY_MS = 1000;

export const lockMs = (failures: number, policy: LockoutPolicy): number =>
  failures < policy.threshold ? 0 : Math.min(policy.baseMs * 2 ** (failures - policy.threshold), policy.maxMs);

const windowOf = (policy: LockoutPolicy): number => policy.windowMs ?? policy.maxMs;

// KEYS: per subject its failures counter, lock and in-flight set (reservation id -> expiry, ms).
// ARGV: id, reservation ms, busy retry ms, then per subject its threshold.
const RESERVE = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retry = 0
for i = 0, #KEYS / 3 - 1 do
  local lock = redis.call('PTTL', KEYS[i * 3 + 2])
  if lock > retry then retry = lock end
  redis.call('ZREMRANGEBYSCORE', KEYS[i * 3 + 3], '-inf', now)
  local inflight = redis.call('ZCARD', KEYS[i * 3 + 3])
  local failures = tonumber(redis.call('GET', KEYS[i * 3 + 1]) or '0')
  local busy = tonumber(ARGV[3])
  if inflight > 0 and failures + inflight >= tonumber(ARGV[4 + i]) and busy > retry then retry = busy end
end
if retry > 0 then return retry end
for i = 0, #KEYS / 3 - 1 do
  redis.call('ZADD', KEYS[i * 3 + 3], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i * 3 + 3], ARGV[2])
end
return 0
`);

// KEYS as RESERVE. ARGV: id, outcome, then per subject threshold, base, max, window, clear-on-success.
const SETTLE = new RedisScript(`
local caused = 0
for i = 0, #KEYS / 3 - 1 do
  local a = 2 + i * 5
  redis.call('ZREM', KEYS[i * 3 + 3], ARGV[1])
  if ARGV[2] == 'failure' then
    local n = redis.call('INCR', KEYS[i * 3 + 1])
    redis.call('PEXPIRE', KEYS[i * 3 + 1], ARGV[a + 4])
    local threshold = tonumber(ARGV[a + 1])
    if n >= threshold then
      local lock = math.min(tonumber(ARGV[a + 2]) * 2 ^ (n - threshold), tonumber(ARGV[a + 3]))
      redis.call('SET', KEYS[i * 3 + 2], '1', 'PX', lock)
      if lock > caused then caused = lock end
    end
  elseif ARGV[2] == 'success' and ARGV[a + 5] == '1' and redis.call('ZCARD', KEYS[i * 3 + 3]) == 0 then
    redis.call('DEL', KEYS[i * 3 + 1], KEYS[i * 3 + 2])
  end
end
return caused
`);

export class RedisLockoutStore implements LockoutStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly reservationMs = RESERVATION_MS,
  ) {}

  async reserve(subjects: LockoutSubject[]): Promise<Reservation> {
    const id = crypto.randomUUID();
    const retryMs = Number(
      await RESERVE.run(this.redis, this.keysOf(subjects), [
        id,
        this.reservationMs,
        BUSY_RETRY_MS,
        ...subjects.map((subject) => subject.policy.threshold),
      ]),
    );
    return retryMs > 0 ? { granted: false, retryMs } : { granted: true, id };
  }

  async settle(subjects: LockoutSubject[], id: string, outcome: AttemptOutcome): Promise<number> {
    const args = subjects.flatMap(({ policy, clearOnSuccess }) => [
      policy.threshold,
      policy.baseMs,
      policy.maxMs,
      windowOf(policy),
      clearOnSuccess ? 1 : 0,
    ]);
    return Number(await SETTLE.run(this.redis, this.keysOf(subjects), [id, outcome, ...args]));
  }

  async lockedFor(key: string): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.keys.loginLock(key)));
  }

  async forget(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.del(...keys.flatMap((key) => [this.keys.loginFailures(key), this.keys.loginLock(key)]));
  }

  private keysOf(subjects: LockoutSubject[]): string[] {
    return subjects.flatMap(({ key }) => [
      this.keys.loginFailures(key),
      this.keys.loginLock(key),
      this.keys.loginInFlight(key),
    ]);
  }
}

interface SubjectState {
  failures: number;
  failuresUntil: number;
  lockedUntil: number;
  /** Reservation id -> when it expires. */
  inflight: Map<string, number>;
}

/** The same semantics in one process: each method runs without an await, so check and count are one step. */
export class MemoryLockoutStore implements LockoutStore {
  private readonly subjects = new Map<string, SubjectState>();

  constructor(private readonly reservationMs = RESERVATION_MS) {}

  async reserve(subjects: LockoutSubject[]): Promise<Reservation> {
    const now = Date.now();
    let retryMs = 0;
    for (const { key, policy } of subjects) {
      const state = this.state(key, now);
      retryMs = Math.max(retryMs, state.lockedUntil - now);
      if (state.inflight.size > 0 && state.failures + state.inflight.size >= policy.threshold) {
        retryMs = Math.max(retryMs, BUSY_RETRY_MS);
      }
    }
    if (retryMs > 0) return { granted: false, retryMs };
    const id = crypto.randomUUID();
    for (const { key } of subjects) this.state(key, now).inflight.set(id, now + this.reservationMs);
    if (this.subjects.size > 100_000) this.sweep(now);
    return { granted: true, id };
  }

  async settle(subjects: LockoutSubject[], id: string, outcome: AttemptOutcome): Promise<number> {
    const now = Date.now();
    let caused = 0;
    for (const { key, policy, clearOnSuccess } of subjects) {
      const state = this.state(key, now);
      state.inflight.delete(id);
      if (outcome === "failure") {
        state.failures += 1;
        state.failuresUntil = now + windowOf(policy);
        const lock = lockMs(state.failures, policy);
        if (lock > 0) state.lockedUntil = now + lock;
        caused = Math.max(caused, lock);
      } else if (outcome === "success" && clearOnSuccess && state.inflight.size === 0) {
        state.failures = 0;
        state.lockedUntil = 0;
      }
    }
    return caused;
  }

  async lockedFor(key: string): Promise<number> {
    const state = this.subjects.get(key);
    return state ? Math.max(0, state.lockedUntil - Date.now()) : 0;
  }

  async forget(keys: string[]): Promise<void> {
    for (const key of keys) {
      const state = this.subjects.get(key);
      if (state) {
        state.failures = 0;
        state.lockedUntil = 0;
      }
    }
  }

  /** The subject's state with expired failures and reservations dropped. */
  private state(key: string, now: number): SubjectState {
    let state = this.subjects.get(key);
    if (!state) {
      state = { failures: 0, failuresUntil: 0, lockedUntil: 0, inflight: new Map() };
      this.subjects.set(key, state);
    }
    if (state.failuresUntil <= now) state.failures = 0;
    for (const [id, until] of state.inflight) if (until <= now) state.inflight.delete(id);
    return state;
  }

  private sweep(now: number): void {
    for (const [key, state] of this.subjects) {
      if (state.failuresUntil <= now && state.lockedUntil <= now && state.inflight.size === 0) {
        this.subjects.delete(key);
      }
    }
  }
}
