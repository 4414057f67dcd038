import { eq, sql } from "drizzle-orm";
import { tooManyRequests, unauthorized } from "../shared/errors";
import { type AuthContext, ipGate, normalizeEmail, toUser } from "./context";
import { digest } from "./crypto";
import type { LoginInput, Session } from "./model";
import { startSession } from "./sessions";
import { users } from "./tables";

/**
 * Signs in. An unknown e-mail and a wrong password give the same error after the same work (one
 * argon2 verification); both count as failures for the account and the IP, and repeated failures
 * lock them out for a time that doubles with each further failure.
 */
export async function login({ ctx, input, ip }: { ctx: AuthContext; input: LoginInput; ip: string }): Promise<Session> {
  await ipGate(ctx, ip);
  const email = normalizeEmail(input.email);
  const subjects = { account: digest(`email:${email}`), client: digest(`ip:${ip}`) };
  const locked = await lockedFor(ctx, subjects);
  if (locked > 0) {
    throw tooManyRequests("login_locked", "too many failed sign-ins, try again later", {
      "retry-after": String(Math.ceil(locked / 1000)),
    });
  }
  const [user] = await ctx.db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, email))
    .limit(1);
  const ok = await ctx.passwords.verify(input.password, user?.passwordHash);
  if (!ok || !user) {
    await recordFailure(ctx, subjects);
    throw unauthorized("invalid_credentials", "invalid e-mail or password");
  }
  await ctx.lockout.clear(subjects.account).catch((error) => lockoutDown(ctx, error));
  return { user: toUser(user), ...(await startSession(ctx, user)) };
}

async function lockedFor(ctx: AuthContext, subjects: { account: string; client: string }): Promise<number> {
  try {
    const [account, client] = await Promise.all([
      ctx.lockout.lockedFor(subjects.account),
      ctx.lockout.lockedFor(subjects.client),
    ]);
    return Math.max(account, client);
  } catch (error) {
    lockoutDown(ctx, error);
    return 0;
  }
}

async function recordFailure(ctx: AuthContext, subjects: { account: string; client: string }): Promise<void> {
  try {
    await Promise.all([
      ctx.lockout.fail(subjects.account, ctx.accountLockout),
      ctx.lockout.fail(subjects.client, ctx.ipLockout),
    ]);
  } catch (error) {
    lockoutDown(ctx, error);
  }
}

/** Lockout state lives in Redis; while it is down sign-ins go on, still bounded by the per-IP rate limit. */
function lockoutDown(ctx: AuthContext, error: unknown): void {
  ctx.logger.warn({ err: String(error) }, "login lockout store unavailable");
}
