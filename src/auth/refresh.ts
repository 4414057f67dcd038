import { eq } from "drizzle-orm";
import type { Database } from "../shared/db";
import { unauthorized } from "../shared/errors";
import type { PublicVerbArgs } from "../shared/verb";
import type { AuthContext } from "./context";
import { hashToken, successorOf } from "./crypto";
import type { RefreshInput, TokenPair } from "./model";
import { endAccessTokens, refreshExpiry, revokeRefreshTokens, tokenPair } from "./sessions";
import { refreshTokens, sessions, users } from "./tables";

type Outcome =
  | { kind: "rotated"; tokens: TokenPair }
  | { kind: "invalid"; reason: string }
  | { kind: "reused"; familyId: string; userId: string };

const invalidRefresh = () => unauthorized("invalid_refresh_token", "invalid or expired refresh token");

/**
 * Rotates a refresh token. The session row is locked first, then the presented token (the order
 * revocation takes them in, so the two never deadlock):
 * - an ended session refuses every token of its family, whatever the token row says, and a session
 *   cannot be ended while a rotation holds its lock (see `revokeSessions`);
 * - concurrent refreshes of one token are serialised: the first creates the successor, the others,
 *   inside the grace window, get the same successor back (it is derived from the token, see
 *   crypto.ts); a token used again after the window is a stolen-token signal that ends the session.
 * The access token is signed before the commit, so a revocation that waited for this rotation
 * computes its end time after the token was issued and outlives it.
 */
export async function refresh({ ctx, input }: PublicVerbArgs<AuthContext, RefreshInput>): Promise<TokenPair> {
  const tokenHash = hashToken(input.refresh_token);
  const outcome = await ctx.db.transaction(async (tx): Promise<Outcome> => {
    const [found] = await tx
      .select({ familyId: refreshTokens.familyId })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash));
    if (!found) return { kind: "invalid", reason: "unknown" };
    const [session] = await tx.select().from(sessions).where(eq(sessions.id, found.familyId)).for("no key update");
    if (!session) return { kind: "invalid", reason: "unknown_session" };
    if (session.revokedAt) return { kind: "invalid", reason: `revoked:${session.revokedReason}` };
    const [row] = await tx.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash)).for("update");
    const now = new Date();
    if (!row) return { kind: "invalid", reason: "unknown" };
    if (row.revokedAt) return { kind: "invalid", reason: `revoked:${row.revokedReason}` };
    if (row.expiresAt <= now) return { kind: "invalid", reason: "expired" };
    const successor = await successorOf(ctx.secrets, input.refresh_token);
    if (!row.usedAt) {
      await tx.insert(refreshTokens).values({
        familyId: row.familyId,
        userId: row.userId,
        tokenHash: hashToken(successor),
        parentId: row.id,
        expiresAt: refreshExpiry(ctx),
      });
      await tx.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, row.id));
      // Under the session row's lock taken above: no new lock, so the locking order is unchanged.
      await tx.update(sessions).set({ lastUsedAt: now }).where(eq(sessions.id, row.familyId));
      return rotated(ctx, tx, row, successor);
    }
    if (now.getTime() - row.usedAt.getTime() <= ctx.env.AUTH_REFRESH_GRACE_S * 1000) {
      const [next] = await tx
        .select({ revokedAt: refreshTokens.revokedAt })
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, hashToken(successor)));
      return next && !next.revokedAt
        ? rotated(ctx, tx, row, successor)
        : { kind: "invalid", reason: "successor_revoked" };
    }
    await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: "reuse_detected" })
      .where(eq(sessions.id, row.familyId));
    await revokeRefreshTokens(tx, [row.familyId], "reuse_detected", now);
    return { kind: "reused", familyId: row.familyId, userId: row.userId };
  });
  if (outcome.kind === "reused") {
    // Whoever holds the family's access token may be the thief: it stops working too.
    await endAccessTokens(ctx, [outcome.familyId], "reuse_detected");
    ctx.logger.warn(
      { user_id: outcome.userId, family_id: outcome.familyId },
      "refresh token reused after rotation; session revoked",
    );
    throw invalidRefresh();
  }
  if (outcome.kind === "invalid") {
    ctx.logger.info({ reason: outcome.reason }, "refresh token rejected");
    throw invalidRefresh();
  }
  return outcome.tokens;
}

/** The new token pair; the tier is read now, so a tier change reaches the next access token. */
async function rotated(
  ctx: AuthContext,
  tx: Database,
  row: { familyId: string; userId: string },
  successor: string,
): Promise<Outcome> {
  const [user] = await tx.select({ id: users.id, tier: users.tier }).from(users).where(eq(users.id, row.userId));
  if (!user) return { kind: "invalid", reason: "unknown_user" };
  return { kind: "rotated", tokens: await tokenPair(ctx, user, row.familyId, successor) };
}
