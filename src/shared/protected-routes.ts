import { Elysia } from "elysia";
import { authGuard } from "./auth/guard";
import type { TokenVerifier } from "./auth/verifier";
import { BEARER_SECURITY } from "./contract";
import type { Logger } from "./logger";
import type { Platform } from "./platform";
import { type RateLimiter, rateLimitByTier } from "./rate-limit";
import { sanitizer } from "./sanitizer";

export interface ProtectedRoutesOptions {
  platform: Platform;
  /** The service's name: its requests/min budget is its own ("chat"). */
  service: string;
  /** The service's logger (`module: <service>`), where refused tokens are noted. */
  logger: Logger;
  /** Defaults to the platform's limiter. */
  limiter?: RateLimiter;
  /** The body limit of the routes after it; defaults to the global MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /** Defaults to the platform's verifier; auth passes its own (the keys it signs with). */
  verifier?: TokenVerifier;
  /**
   * False only when the service already applies the sanitizer to every route, public ones
   * included (auth): a second pass would change nothing.
   */
  sanitize?: boolean;
}

/**
 * The signed-in part of a service, applied to every route registered after it, in this order:
 * the token guard (transform phase, so a caller without a valid token learns nothing about its
 * body), the bearer security the OpenAPI document reads from each route's `detail`, the
 * sanitizer, and the tier's requests/min of the service (it needs `user`).
 * A function plugin: it runs on the service's own instance, because a route's `detail` does not
 * cross plugin boundaries, and the scoped hooks land exactly where they did when written inline.
 */
export function protectedRoutes(options: ProtectedRoutesOptions) {
  const { platform, service, logger, limiter } = options;
  const verifier = options.verifier ?? platform.verifier;
  const maxBodyBytes = options.maxBodyBytes ?? platform.env.MAX_BODY_BYTES;
  // Typed as a fresh instance, the shape Elysia merges a function plugin's result as: only what
  // this adds (`user`) reaches the routes' types, and the service's own routes stay as they are.
  return (app: Elysia) =>
    app
      .use(authGuard(verifier, logger))
      .guard({ detail: { security: BEARER_SECURITY } })
      .use(options.sanitize === false ? new Elysia() : sanitizer({ maxBodyBytes }))
      .use(rateLimitByTier(platform, service, { limiter }));
}
