import { Elysia } from "elysia";
import { forbidden } from "../errors";
import { requestIdOf } from "../http";
import type { Logger } from "../logger";
import { type Tier, tierRank } from "../tiers";
import { type AuthUser, bearerToken, TokenError, type TokenVerifier } from "./verifier";

/**
 * Resolves `user` from the bearer token for every route registered after it in the plugin that
 * uses it (scoped: it protects its parent, not the whole app). Deliberately unnamed: a named
 * plugin is deduplicated, and a second service using it would be left unprotected.
 * The precise rejection reason goes to the log only; the client gets one generic 401.
 * It derives (transform phase) rather than resolves: the token is judged before the body is
 * validated, so a caller without credentials learns nothing from validation errors.
 */
export function authGuard(verifier: TokenVerifier, logger?: Logger) {
  return new Elysia().derive({ as: "scoped" }, async ({ headers, request }): Promise<{ user: AuthUser }> => {
    try {
      return { user: await verifier.verify(bearerToken(headers.authorization)) };
    } catch (error) {
      if (error instanceof TokenError) {
        const entry = { reason: error.reason, request_id: requestIdOf(request), path: new URL(request.url).pathname };
        if (error.reason === "token_keys_unavailable") logger?.warn(entry, "token keys unavailable");
        else logger?.info(entry, "token rejected");
      }
      throw error;
    }
  });
}

/** Throws 403 `tier_insufficient` unless the user's tier is at least `minimum`. */
export function requireTier(user: Pick<AuthUser, "tier">, minimum: Tier): void {
  if (tierRank(user.tier) < tierRank(minimum)) {
    throw forbidden("tier_insufficient", `this requires the ${minimum} tier or higher`);
  }
}
