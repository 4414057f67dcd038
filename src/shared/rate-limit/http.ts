import { Elysia } from "elysia";
import type { AuthUser } from "../auth/verifier";
import { type ServiceError, tooManyRequests } from "../errors";
import type { Platform } from "../platform";
import { limitsFor, type Tier, type TierLimits } from "../tiers";
import { rateLimiterFor } from "./for-platform";
import type { RateDecision, RateLimiter, RateRule } from "./rate-limiter";

/** A per-minute rule read from one field of the tiers table. */
export const perMinute =
  (field: keyof TierLimits) =>
  (tier: Tier): RateRule => ({ limit: limitsFor(tier)[field], windowMs: 60_000 });

/** A service's per-tier rule: requests per minute from the tiers table. */
export const tierRule = perMinute("requestsPerMinute");

export interface RateCheck {
  allowed: boolean;
  decision: RateDecision;
  /** `RateLimit-Policy` and `RateLimit` (IETF httpapi draft), plus `Retry-After` when denied. */
  headers: Record<string, string>;
}

/**
 * IETF draft-ietf-httpapi-ratelimit-headers: `"name";q=quota;w=window` and `"name";r=remaining;t=reset`.
 * A quota without a window (a concurrency cap) leaves `w` out, as the draft allows.
 */
export function rateLimitHeaders(
  policy: string,
  rule: Pick<RateRule, "limit"> & Partial<Pick<RateRule, "windowMs">>,
  decision: Pick<RateDecision, "allowed" | "remaining" | "resetMs" | "retryAfterMs">,
): Record<string, string> {
  const window = rule.windowMs === undefined ? "" : `;w=${Math.ceil(rule.windowMs / 1000)}`;
  const headers: Record<string, string> = {
    "ratelimit-policy": `"${policy}";q=${rule.limit}${window}`,
    ratelimit: `"${policy}";r=${decision.remaining};t=${Math.ceil(decision.resetMs / 1000)}`,
  };
  if (!decision.allowed) headers["retry-after"] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
  return headers;
}

export interface CheckRateOptions {
  /** The limit's namespace, normally the service name ("chat"): each service has its own budget. */
  service: string;
  userId: string;
  tier: Tier;
  /** Overrides the tiers table (tests, special routes). */
  rule?: (tier: Tier) => RateRule;
  cost?: number;
  limiter?: RateLimiter;
}

/**
 * One per-user, per-tier, per-service check. For anything that is not an HTTP route (the chat
 * gateway's `chat` frames); routes use `rateLimitByTier`.
 */
export async function checkRate(platform: Platform, options: CheckRateOptions): Promise<RateCheck> {
  const rule = (options.rule ?? tierRule)(options.tier);
  const limiter = options.limiter ?? rateLimiterFor(platform);
  const decision = await limiter.check(
    platform.keys.rateLimit(options.service, options.userId),
    rule,
    options.cost ?? 1,
  );
  return { allowed: decision.allowed, decision, headers: rateLimitHeaders(options.service, rule, decision) };
}

/** The 429 for a denied check, in the shared error shape. */
export function rateLimitedError(check: RateCheck): ServiceError {
  return tooManyRequests("rate_limited", "too many requests, slow down", check.headers);
}

/**
 * Applies the tier's requests/min of `service` to every route registered after it. Use it after
 * `authGuard` (it needs `user`); scoped like the guard, so it covers the plugin that uses it.
 */
export function rateLimitByTier(
  platform: Platform,
  service: string,
  options: Pick<CheckRateOptions, "rule" | "limiter"> = {},
) {
  return new Elysia().onBeforeHandle({ as: "scoped" }, async (context) => {
    const user = (context as { user?: AuthUser }).user;
    // Mounted without the guard it would silently limit nobody: refuse loudly instead.
    if (!user) throw new Error(`rateLimitByTier(${service}) is mounted before authGuard`);
    const check = await checkRate(platform, { service, userId: user.userId, tier: user.tier, ...options });
    if (!check.allowed) throw rateLimitedError(check);
    for (const [name, value] of Object.entries(check.headers)) context.set.headers[name] = value;
  });
}

/** What a route's `beforeHandle` sees of the request, once `authGuard` has run. */
interface LimitedContext {
  user: AuthUser;
  set: { headers: Record<string, string | number> };
}

/**
 * A tighter budget of its own for one route, on top of the service's `rateLimitByTier`: pass it as
 * the route's `beforeHandle`. Several routes may share a budget by sharing `policy`. Its RateLimit
 * headers are listed after the service's (the draft allows one entry per policy).
 */
export function routeRateLimit(
  platform: Platform,
  policy: string,
  rule: (tier: Tier) => RateRule,
  limiter?: RateLimiter,
) {
  return async ({ user, set }: LimitedContext): Promise<void> => {
    const check = await checkRate(platform, { service: policy, userId: user.userId, tier: user.tier, rule, limiter });
    if (!check.allowed) throw rateLimitedError(check);
    for (const [name, value] of Object.entries(check.headers)) {
      const before = set.headers[name];
      set.headers[name] = before === undefined ? value : `${before}, ${value}`;
    }
  };
}
