import type { KeyRing } from "../shared/auth/key-ring";
import type { TokenVerifier } from "../shared/auth/verifier";
import type { Database } from "../shared/db";
import type { Env } from "../shared/env";
import { tooManyRequests } from "../shared/errors";
import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import { type RateLimiter, rateLimitHeaders } from "../shared/rate-limit";
import type { AuthSecrets } from "./crypto";
import { digest } from "./crypto";
import type { LockoutPolicy, LockoutStore } from "./lockout";
import type { User } from "./model";
import type { PasswordHasher } from "./passwords";
import type { users } from "./tables";

/** Everything the auth verbs use, built once by `createAuthService`. */
export interface AuthContext {
  platform: Platform;
  db: Database;
  env: Env;
  logger: Logger;
  ring: KeyRing;
  /** Accepts exactly the keys auth publishes: a key removed from the ring stops working here at once. */
  verifier: TokenVerifier;
  secrets: AuthSecrets;
  passwords: PasswordHasher;
  lockout: LockoutStore;
  limiter: RateLimiter;
  accountLockout: LockoutPolicy;
  ipLockout: LockoutPolicy;
}

export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** Per-IP budget shared by login and register, before any password work is done. */
export async function ipGate(ctx: AuthContext, ip: string): Promise<void> {
  const rule = { limit: ctx.env.AUTH_IP_REQUESTS_PER_MIN, windowMs: 60_000 };
  const decision = await ctx.limiter.check(ctx.platform.keys.rateLimit("auth-ip", digest(`ip:${ip}`)), rule);
  if (!decision.allowed) {
    throw tooManyRequests("rate_limited", "too many requests, slow down", rateLimitHeaders("auth-ip", rule, decision));
  }
}

export function toUser(row: typeof users.$inferSelect): User {
  return {
    id: row.id,
    email: row.email,
    display_name: row.displayName,
    tier: row.tier,
    created_at: row.createdAt.toISOString(),
  };
}
