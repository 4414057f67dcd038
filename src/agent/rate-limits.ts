import type { AuthUser } from "../shared/auth/verifier";
import type { Platform } from "../shared/platform";
import { checkRate, perMinute, type RateLimiter, rateLimitedError, routeRateLimit } from "../shared/rate-limit";

/** The budget of setup-journey turns, shared by the HTTP routes and the relayed socket frames. */
export const JOURNEY_POLICY = "agent-journey";
export const journeyRule = perMinute("journeyTurnsPerMinute");

/** The journey routes' `beforeHandle`: the tier's journey turns per minute, on top of the agent budget. */
export const journeyRouteLimit = (platform: Platform, limiter?: RateLimiter) =>
  routeRateLimit(platform, JOURNEY_POLICY, journeyRule, limiter);

/**
 * The same budget for a turn relayed from a device socket: the chat instance applied only its own
 * requests/min, so without this a device could spend a second journey budget beside HTTP's.
 * Throws the 429 ServiceError (rendered as an `error` frame with `retry_after_ms`).
 */
export function journeyTurnLimit(platform: Platform, limiter?: RateLimiter) {
  return async (user: Pick<AuthUser, "userId" | "tier">): Promise<void> => {
    const check = await checkRate(platform, {
      service: JOURNEY_POLICY,
      userId: user.userId,
      tier: user.tier,
      rule: journeyRule,
      limiter,
    });
    if (!check.allowed) throw rateLimitedError(check);
  };
}
