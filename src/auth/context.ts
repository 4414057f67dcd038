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
import type { DetachedWork } from "./detached";
import type { LockoutPolicy, LockoutStore, LockoutSubject } from "./lockout";
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
  /** Failures of one account from one client IP (AUTH_LOCKOUT_*): the lock an attacker at one address hits. */
  accountLockout: LockoutPolicy;
  /** Failures from one client IP across all accounts (AUTH_IP_LOCKOUT_THRESHOLD). */
  ipLockout: LockoutPolicy;
  /** Wakes the account-lifecycle relay after a commit it has work for (a deletion, an export). */
  wakeLifecycle(): void;
  /** Work answered before it is done (a password reset's look-up and mail); awaited at stop. */
  detached: DetachedWork;
}

export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** Per-IP budget shared by login and register, before any password work is done. */
export function ipGate(ctx: AuthContext, ip: string): Promise<void> {
  return perIpBudget(ctx, "auth-ip", ctx.env.AUTH_IP_REQUESTS_PER_MIN, ip);
}

/** Per-IP budget of the routes that take a mailed token (reset, verify): cheap to ask, so bounded like sign-ins. */
export function tokenGate(ctx: AuthContext, ip: string): Promise<void> {
  return perIpBudget(ctx, "auth-token-ip", ctx.env.AUTH_IP_REQUESTS_PER_MIN, ip);
}

/** Per-IP budget of refresh, its own so that devices refreshing do not use up their network's sign-ins. */
export function refreshGate(ctx: AuthContext, ip: string): Promise<void> {
  return perIpBudget(ctx, "auth-refresh-ip", ctx.env.AUTH_REFRESH_IP_REQUESTS_PER_MIN, ip);
}

/** Mails (a password reset, a confirmation resend) one client IP may cause per hour. */
export function mailIpGate(ctx: AuthContext, ip: string): Promise<void> {
  return budget(ctx, "auth-mail-ip", { limit: ctx.env.AUTH_MAIL_IP_PER_HOUR, windowMs: 3_600_000 }, `ip:${ip}`);
}

/**
 * Mails per hour to one address or about one account (`subject`: `email:…` or `user:…`), wherever
 * they are asked from, so nobody can flood a mailbox. A known and an unknown address are limited alike.
 */
export function mailSubjectGate(ctx: AuthContext, subject: string): Promise<void> {
  return budget(ctx, "auth-mail-subject", { limit: ctx.env.AUTH_MAIL_ADDRESS_PER_HOUR, windowMs: 3_600_000 }, subject);
}

function perIpBudget(ctx: AuthContext, policy: string, perMinute: number, ip: string): Promise<void> {
  return budget(ctx, policy, { limit: perMinute, windowMs: 60_000 }, `ip:${ip}`);
}

async function budget(
  ctx: AuthContext,
  policy: string,
  rule: { limit: number; windowMs: number },
  subject: string,
): Promise<void> {
  const decision = await ctx.limiter.check(ctx.platform.keys.rateLimit(policy, digest(subject)), rule);
  if (!decision.allowed) {
    throw tooManyRequests("rate_limited", "too many requests, slow down", rateLimitHeaders(policy, rule, decision));
  }
}

/**
 * What one password check of `email` from `ip` counts against (README, "Sign-in limits"): the
 * account from that IP (locks, growing; cleared by a success), the IP across accounts (locks,
 * growing), and the account from everywhere (past a much higher threshold, a short fixed delay: an
 * attacker elsewhere slows the owner down but cannot lock them out).
 */
export function signInSubjects(ctx: AuthContext, email: string, ip: string): LockoutSubject[] {
  const delayMs = ctx.env.AUTH_ACCOUNT_LOCKOUT_DELAY_S * 1000;
  return [
    { key: digest(`email-ip:${email}\n${ip}`), policy: ctx.accountLockout, clearOnSuccess: true },
    { key: digest(`ip:${ip}`), policy: ctx.ipLockout },
    {
      key: digest(`email:${email}`),
      policy: {
        threshold: ctx.env.AUTH_ACCOUNT_LOCKOUT_THRESHOLD,
        baseMs: delayMs,
        maxMs: delayMs,
        windowMs: ctx.env.AUTH_LOCKOUT_MAX_S * 1000,
      },
    },
  ];
}

export function toUser(row: typeof users.$inferSelect): User {
  return {
    id: row.id,
    email: row.email,
    display_name: row.displayName,
    tier: row.tier,
    locale: row.locale === "it" ? "it" : "en",
    email_verified: row.emailVerifiedAt !== null,
    created_at: row.createdAt.toISOString(),
  };
}
