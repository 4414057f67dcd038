/** At most `limit` units per `windowMs`, spread evenly (GCRA): a full burst, then one unit per window/limit. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** Units still available right now after this check. */
  remaining: number;
  /** Until the quota is whole again (allowed) or until the next unit frees up (denied), in ms. */
  resetMs: number;
  /** 0 when allowed. */
  retryAfterMs: number;
  /** Which store decided: the shared one, or this instance alone while the shared one is unreachable. */
  source: "shared" | "local";
}

/**
 * A rate limiter shared by every replica (Redis) or local to one process (embedded mode, and the
 * fallback while Redis is unreachable). Both adapters pass `test/shared/rate-limit.contract.test.ts`.
 */
export interface RateLimiter {
  /** Takes `cost` units from `key` if they are available; never partially. */
  check(key: string, rule: RateRule, cost?: number): Promise<RateDecision>;
  /** Forgets a key (e.g. a failed-login counter after a success). */
  reset(key: string): Promise<void>;
}

/**
 * GCRA on one clock: the "theoretical arrival time" `tat` advances by window/limit per unit, and a
 * request is admitted while `tat` stays within one window of now. Shared by the in-process adapter
 * and mirrored line by line in the Redis Lua script.
 */
export function gcra(
  now: number,
  storedTat: number | undefined,
  rule: RateRule,
  cost: number,
): { tat: number | undefined; decision: Omit<RateDecision, "source"> } {
  const interval = rule.windowMs / rule.limit;
  const tat = Math.max(storedTat ?? now, now);
  const next = tat + interval * cost;
  const allowAt = next - rule.windowMs;
  if (allowAt > now) {
    const retry = Math.ceil(allowAt - now);
    return {
      tat: storedTat,
      decision: { allowed: false, limit: rule.limit, remaining: 0, resetMs: retry, retryAfterMs: retry },
    };
  }
  return {
    tat: next,
    decision: {
      allowed: true,
      limit: rule.limit,
      remaining: Math.floor((now - allowAt) / interval),
      resetMs: Math.ceil(next - now),
      retryAfterMs: 0,
    },
  };
}
