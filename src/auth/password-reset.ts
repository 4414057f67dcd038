import { eq, sql } from "drizzle-orm";
import { unprocessable } from "../shared/errors";
import type { ClientInfo, PublicVerbArgs } from "../shared/verb";
import { type AuthContext, mailIpGate, mailSubjectGate, normalizeEmail, signInSubjects, tokenGate } from "./context";
import {
  findLiveToken,
  invalidToken,
  issueEmailToken,
  newEmailToken,
  passwordResetLink,
  spendToken,
  spendUserTokens,
} from "./email-tokens";
import { enqueueMail } from "./mail/outbox";
import type { ForgotPasswordInput, MailAccepted, ResetPasswordInput } from "./model";
import { passwordProblem } from "./passwords";
import { endAccessTokens, revokeSessions } from "./sessions";
import { users } from "./tables";

/**
 * Asks for a reset link. The answer is 202 with the same body whether or not an account uses the
 * address, and is given before the account is even looked up (the look-up, the token and the mail
 * happen after, see `DetachedWork`): the time it takes cannot tell either. The limits (per client
 * IP, per address) are checked first and apply to every address alike.
 */
export async function forgotPassword({
  ctx,
  input,
  client,
}: PublicVerbArgs<AuthContext, ForgotPasswordInput> & { client: ClientInfo }): Promise<MailAccepted> {
  await mailIpGate(ctx, client.ip);
  const email = normalizeEmail(input.email);
  await mailSubjectGate(ctx, `email:${email}`);
  const token = newEmailToken();
  await ctx.detached.run("password_reset_mail", () => mailResetLink(ctx, email, token));
  return { status: "accepted" };
}

async function mailResetLink(ctx: AuthContext, email: string, token: string): Promise<void> {
  const [user] = await ctx.db
    .select({ id: users.id, email: users.email, locale: users.locale })
    .from(users)
    .where(eq(sql`lower(${users.email})`, email))
    .limit(1);
  if (!user) return;
  const ttlS = ctx.env.PASSWORD_RESET_TTL_S;
  await ctx.db.transaction(async (tx) => {
    await issueEmailToken(tx, { userId: user.id, purpose: "password_reset", email, ttlS, token });
    await enqueueMail(tx, {
      userId: user.id,
      to: user.email,
      template: "password_reset",
      locale: user.locale,
      payload: { url: passwordResetLink(ctx, token), expires_minutes: Math.max(1, Math.round(ttlS / 60)) },
    });
  });
}

/**
 * Sets a new password with a reset link's token, as a password change does and more: the token and
 * every other reset token of the account are spent, every session ends (its device sockets with
 * it), the sign-in lockout of the account is forgotten, and "your password was changed" is mailed.
 * The token is spent by the transaction that sets the password, so of concurrent resets with one
 * token exactly one succeeds; an invalid password (422) or an invalid token (400) changes nothing.
 */
export async function resetPassword({
  ctx,
  input,
  client,
}: PublicVerbArgs<AuthContext, ResetPasswordInput> & { client: ClientInfo }): Promise<void> {
  await tokenGate(ctx, client.ip);
  const found = await findLiveToken(ctx.db, input.token, ["password_reset"]);
  if (!found) throw invalidToken();
  const [user] = await ctx.db.select().from(users).where(eq(users.id, found.userId));
  // A link sent to an address the account no longer has is dead (a change of address spends it too).
  if (!user || normalizeEmail(user.email) !== found.email) throw invalidToken();
  const problem = passwordProblem(input.password, user.email);
  if (problem) throw unprocessable(problem, [{ path: "password", message: problem }]);
  const passwordHash = await ctx.passwords.hash(input.password);
  const ended = await ctx.db.transaction(async (tx) => {
    // The account's row first, as a confirmation of a new address takes it before it spends this
    // account's reset tokens: the same order both ways, so the two never deadlock.
    await tx.select({ id: users.id }).from(users).where(eq(users.id, user.id)).for("update");
    const spent = await spendToken(tx, input.token, ["password_reset"]);
    if (!spent) return undefined;
    // Following the link proved the mailbox is the owner's: the address counts as confirmed.
    await tx
      .update(users)
      .set({ passwordHash, emailVerifiedAt: user.emailVerifiedAt ?? new Date(), updatedAt: new Date() })
      .where(eq(users.id, user.id));
    await spendUserTokens(tx, user.id, ["password_reset"]);
    const sessions = await revokeSessions(tx, { userId: user.id, reason: "password_reset" });
    await enqueueMail(tx, {
      userId: user.id,
      to: user.email,
      template: "password_changed",
      locale: user.locale,
      payload: {},
    });
    return sessions;
  });
  if (!ended) throw invalidToken();
  await endAccessTokens(ctx, ended, "password_reset");
  await forgetLockout(ctx, found.email, client.ip);
  ctx.logger.info({ user_id: user.id, sessions_ended: ended.length }, "password reset");
}

/**
 * The account's own lock (from everywhere, and from this client's address) is lifted: the mailbox's
 * owner just proved who they are. The client address's lock across accounts stays.
 */
async function forgetLockout(ctx: AuthContext, email: string, ip: string): Promise<void> {
  const [fromHere, , fromEverywhere] = signInSubjects(ctx, email, ip);
  const keys = [fromHere, fromEverywhere].flatMap((subject) => (subject ? [subject.key] : []));
  await ctx.lockout
    .forget(keys)
    .catch((error) => ctx.logger.warn({ err: String(error) }, "login lockout not cleared after a password reset"));
}
