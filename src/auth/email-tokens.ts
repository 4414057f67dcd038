import { and, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { Database } from "../shared/db";
import { badRequest } from "../shared/errors";
import type { AuthContext } from "./context";
import { hashToken } from "./crypto";
import { emailTokens } from "./tables";

export type EmailTokenPurpose = (typeof emailTokens.$inferSelect)["purpose"];
export type EmailTokenRow = typeof emailTokens.$inferSelect;

/** A mailed token: 256 random bits, base64url. Only its SHA-256 is stored. */
export const newEmailToken = (): string =>
  Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");

/** One answer for a token that is unknown, expired, spent or of another purpose: which one is nobody's business. */
export const invalidToken = () => badRequest("invalid_token", "this link is invalid or has expired");

/** Stores a new token of `purpose` for `userId`, mailed to `email`; returns the token (for the link). */
export async function issueEmailToken(
  tx: Database,
  options: { userId: string; purpose: EmailTokenPurpose; email: string; ttlS: number; token?: string },
): Promise<string> {
  const token = options.token ?? newEmailToken();
  await tx.insert(emailTokens).values({
    userId: options.userId,
    purpose: options.purpose,
    tokenHash: hashToken(token),
    email: options.email,
    expiresAt: new Date(Date.now() + options.ttlS * 1000),
  });
  return token;
}

/** The token's row if it is live (unused, unexpired, of one of these purposes), without spending it. */
export async function findLiveToken(
  db: Database,
  token: string,
  purposes: EmailTokenPurpose[],
): Promise<EmailTokenRow | undefined> {
  const [row] = await db.select().from(emailTokens).where(live(token, purposes));
  return row;
}

/**
 * Spends a token: one UPDATE that only matches a live token, so of concurrent uses exactly one gets
 * the row (the others wait for its row lock, then see `used_at` set) and the rest get undefined.
 */
export async function spendToken(
  tx: Database,
  token: string,
  purposes: EmailTokenPurpose[],
): Promise<EmailTokenRow | undefined> {
  const [row] = await tx.update(emailTokens).set({ usedAt: sql`now()` }).where(live(token, purposes)).returning();
  return row;
}

/** Spends every other live token of these purposes of a user (a reset done, an address changed). */
export async function spendUserTokens(tx: Database, userId: string, purposes: EmailTokenPurpose[]): Promise<void> {
  await tx
    .update(emailTokens)
    .set({ usedAt: sql`now()` })
    .where(and(eq(emailTokens.userId, userId), inArray(emailTokens.purpose, purposes), isNull(emailTokens.usedAt)));
}

const live = (token: string, purposes: EmailTokenPurpose[]) =>
  and(
    eq(emailTokens.tokenHash, hashToken(token)),
    inArray(emailTokens.purpose, purposes),
    isNull(emailTokens.usedAt),
    gt(emailTokens.expiresAt, sql`now()`),
  );

/** `base` with `token=…` appended as a query parameter (after any query it has, before a fragment). */
export function linkWithToken(base: string, token: string): string {
  const hash = base.indexOf("#");
  const [head, fragment] = hash === -1 ? [base, ""] : [base.slice(0, hash), base.slice(hash)];
  const separator = head.includes("?") ? (head.endsWith("?") || head.endsWith("&") ? "" : "&") : "?";
  return `${head}${separator}token=${encodeURIComponent(token)}${fragment}`;
}

export const passwordResetLink = (ctx: AuthContext, token: string): string =>
  linkWithToken(ctx.env.PASSWORD_RESET_URL ?? `${ctx.env.PUBLIC_URL.replace(/\/+$/, "")}/account/reset`, token);

export const emailVerifyLink = (ctx: AuthContext, token: string): string =>
  linkWithToken(ctx.env.EMAIL_VERIFY_URL ?? `${ctx.env.PUBLIC_URL.replace(/\/+$/, "")}/account/verify`, token);
