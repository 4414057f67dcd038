import { and, eq, ne, sql } from "drizzle-orm";
import type { Database } from "../shared/db";
import { conflict, notFound } from "../shared/errors";
import type { ClientInfo, PublicVerbArgs, VerbArgs } from "../shared/verb";
import { type AuthContext, mailSubjectGate, normalizeEmail, tokenGate } from "./context";
import {
  emailVerifyLink,
  findLiveToken,
  invalidToken,
  issueEmailToken,
  spendToken,
  spendUserTokens,
} from "./email-tokens";
import { enqueueMail } from "./mail/outbox";
import type { EmailVerified, MailAccepted, VerifyEmailInput } from "./model";
import { users } from "./tables";

const emailTaken = () => conflict("email_taken", "an account with this e-mail already exists");
const hoursOf = (seconds: number) => Math.max(1, Math.round(seconds / 3600));

/**
 * Follows a confirmation link. A sign-up's token confirms the account's address (if it is still the
 * one the link went to); a change's token makes its address the account's. If another account took
 * that address meanwhile the answer is 409 `email_taken` and the token is not spent: the
 * transaction that would have spent it is rolled back, so the link works again should the address
 * become free before it expires. A change also spends every other token the account has out
 * (resets and confirmations went to the old address, or to another new one).
 */
export async function verifyEmail({
  ctx,
  input,
  client,
}: PublicVerbArgs<AuthContext, VerifyEmailInput> & { client: ClientInfo }): Promise<EmailVerified> {
  await tokenGate(ctx, client.ip);
  const found = await findLiveToken(ctx.db, input.token, ["email_verify", "email_change"]);
  if (!found) throw invalidToken();
  let result: EmailVerified | undefined;
  try {
    result = await ctx.db.transaction(async (tx) => {
      // The account's row before any of its tokens, as a reset takes them: one order, no deadlock.
      const [user] = await tx.select().from(users).where(eq(users.id, found.userId)).for("update");
      if (!user) return undefined;
      const spent = await spendToken(tx, input.token, ["email_verify", "email_change"]);
      if (!spent) return undefined;
      if (spent.purpose === "email_verify") {
        if (normalizeEmail(user.email) !== spent.email) return undefined;
        await tx
          .update(users)
          .set({ emailVerifiedAt: user.emailVerifiedAt ?? new Date() })
          .where(eq(users.id, user.id));
        return { purpose: "email_verify", email: user.email };
      }
      if (await addressTaken(tx, spent.email, user.id)) throw emailTaken();
      await tx
        .update(users)
        .set({ email: spent.email, emailVerifiedAt: new Date(), updatedAt: new Date() })
        .where(eq(users.id, user.id));
      await spendUserTokens(tx, user.id, ["password_reset", "email_verify", "email_change"]);
      ctx.logger.info({ user_id: user.id }, "e-mail address changed");
      return { purpose: "email_change", email: spent.email };
    });
  } catch (error) {
    // The check above and the unique index race: another account may take the address in between.
    if (isUniqueViolation(error)) throw emailTaken();
    throw error;
  }
  if (!result) throw invalidToken();
  return result;
}

/** Mails a new confirmation link to the caller's address; 409 `already_verified` once confirmed. */
export async function resendVerification({ ctx, user }: VerbArgs<AuthContext>): Promise<MailAccepted> {
  const [row] = await ctx.db.select().from(users).where(eq(users.id, user.userId));
  if (!row) throw notFound("user");
  if (row.emailVerifiedAt) throw conflict("already_verified", "the address is already confirmed");
  await mailSubjectGate(ctx, `user:${row.id}`);
  await ctx.db.transaction(async (tx) => {
    await mailConfirmation(ctx, tx, { userId: row.id, email: row.email, locale: row.locale, purpose: "email_verify" });
  });
  return { status: "accepted" };
}

/**
 * Starts a change of address (the password was checked by the caller): the new address gets the
 * link that makes the change, the old one a notice that it was asked for. 409 when the new address
 * is already an account's.
 */
export async function requestEmailChange(
  ctx: AuthContext,
  row: { id: string; email: string; locale: string },
  newEmail: string,
): Promise<void> {
  if (await addressTaken(ctx.db, newEmail, row.id)) throw emailTaken();
  await mailSubjectGate(ctx, `user:${row.id}`);
  await ctx.db.transaction(async (tx) => {
    await mailConfirmation(ctx, tx, { userId: row.id, email: newEmail, locale: row.locale, purpose: "email_change" });
    await enqueueMail(tx, {
      userId: row.id,
      to: row.email,
      template: "email_change_notice",
      locale: row.locale,
      payload: { new_email: maskAddress(newEmail) },
    });
  });
}

async function mailConfirmation(
  ctx: AuthContext,
  tx: Database,
  to: { userId: string; email: string; locale: string; purpose: "email_verify" | "email_change" },
): Promise<void> {
  const ttlS = ctx.env.EMAIL_VERIFY_TTL_S;
  const token = await issueEmailToken(tx, { userId: to.userId, purpose: to.purpose, email: to.email, ttlS });
  const payload = { url: emailVerifyLink(ctx, token), expires_hours: hoursOf(ttlS) };
  await enqueueMail(tx, {
    userId: to.userId,
    to: to.email,
    template: to.purpose === "email_verify" ? "email_verify" : "email_change_confirm",
    locale: to.locale,
    payload,
  });
}

async function addressTaken(db: Database, email: string, exceptUserId: string): Promise<boolean> {
  const [taken] = await db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(sql`lower(${users.email})`, email), ne(users.id, exceptUserId)))
    .limit(1);
  return taken !== undefined;
}

/** `name@example.com` → `n•••@example.com`: the old mailbox learns the domain, not the whole address. */
export function maskAddress(email: string): string {
  const at = email.lastIndexOf("@");
  if (at <= 0) return "•••";
  return `${email.slice(0, 1)}•••${email.slice(at)}`;
}

function isUniqueViolation(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === "object" && depth < 5; depth++) {
    if ((current as { code?: unknown }).code === "23505") return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
