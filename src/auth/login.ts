import { and, eq, sql } from "drizzle-orm";
import { tooManyRequests, unauthorized } from "../shared/errors";
import type { ClientInfo, PublicVerbArgs } from "../shared/verb";
import { deviceNameFrom } from "./client-hints";
import { type AuthContext, ipGate, normalizeEmail, signInSubjects, toUser } from "./context";
import { passwordHashFormat } from "./legacy-hashes";
import type { AttemptOutcome } from "./lockout";
import type { LoginInput, Session } from "./model";
import { startSession } from "./sessions";
import { users } from "./tables";

/**
 * Signs in. An unknown e-mail and a wrong password give the same error after the same work (one
 * argon2 verification); both count as failures for the account and the IP (see `signInSubjects`).
 * A hash of the monolith's (or of older argon2 costs) is replaced by the current one on success.
 */
export async function login({
  ctx,
  input,
  client,
}: PublicVerbArgs<AuthContext, LoginInput> & { client: ClientInfo }): Promise<Session> {
  const { ip } = client;
  await ipGate(ctx, ip);
  const email = normalizeEmail(input.email);
  const [user] = await ctx.db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, email))
    .limit(1);
  const ok = await passwordAttempt(ctx, { email, ip }, () => ctx.passwords.verify(input.password, user?.passwordHash));
  if (!ok || !user) throw unauthorized("invalid_credentials", "invalid e-mail or password");
  await upgradePasswordHash(ctx, user, input.password);
  return { user: toUser(user), ...(await startSession(ctx, user, deviceNameFrom(input.device_name, client))) };
}

/**
 * Now that the password is known, replaces a hash of another format or cost with the current
 * argon2id. Only where the stored hash is still the one just verified, so a password changed in
 * the meantime (or another sign-in's upgrade) is never overwritten. A failure (the hashing queue
 * full, the database away) leaves the old hash, which still verifies: the next sign-in tries again.
 */
async function upgradePasswordHash(
  ctx: AuthContext,
  user: { id: string; passwordHash: string },
  password: string,
): Promise<void> {
  if (!ctx.passwords.needsRehash(user.passwordHash)) return;
  try {
    const rehashed = await ctx.passwords.hash(password);
    const updated = await ctx.db
      .update(users)
      .set({ passwordHash: rehashed })
      .where(and(eq(users.id, user.id), eq(users.passwordHash, user.passwordHash)))
      .returning({ id: users.id });
    if (updated.length > 0) {
      ctx.logger.info({ user_id: user.id, from: passwordHashFormat(user.passwordHash) }, "password hash upgraded");
    }
  } catch (error) {
    ctx.logger.warn({ err: String(error), user_id: user.id }, "password hash upgrade failed");
  }
}

/**
 * Runs one password check of `email` from `ip` under the sign-in lockout, wherever a password is
 * checked (login, a password change): reserved before any hashing, so parallel guesses cannot
 * outrun the count, and settled with the verdict. 429 `login_locked` while any subject refuses.
 */
export async function passwordAttempt(
  ctx: AuthContext,
  { email, ip }: { email: string; ip: string },
  check: () => Promise<boolean>,
): Promise<boolean> {
  const subjects = signInSubjects(ctx, email, ip);
  const reservation = await ctx.lockout.reserve(subjects).catch((error) => lockoutDown(ctx, error));
  if (reservation && !reservation.granted) {
    throw tooManyRequests("login_locked", "too many failed sign-ins, try again later", {
      "retry-after": String(Math.ceil(reservation.retryMs / 1000)),
    });
  }
  let outcome: AttemptOutcome = "abandoned";
  try {
    const ok = await check();
    outcome = ok ? "success" : "failure";
    return ok;
  } finally {
    if (reservation) {
      await ctx.lockout.settle(subjects, reservation.id, outcome).catch((error) => lockoutDown(ctx, error));
    }
  }
}

/** Lockout state lives in Redis; while it is down sign-ins go on, still bounded by the per-IP rate limit. */
function lockoutDown(ctx: AuthContext, error: unknown): undefined {
  ctx.logger.warn({ err: String(error) }, "login lockout store unavailable");
  return undefined;
}
