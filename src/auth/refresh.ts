import { and, eq, isNull } from "drizzle-orm";
import { unauthorized } from "../shared/errors";
import type { AuthContext } from "./context";
import { hashToken, successorOf } from "./crypto";
import type { RefreshInput, TokenPair } from "./model";
import { endAccessTokens, refreshExpiry, tokenPair } from "./sessions";
import { refreshTokens, users } from "./tables";

type Outcome =
  | { kind: "rotated"; successor: string; familyId: string; userId: string }
  | { kind: "invalid"; reason: string }
  | { kind: "reused"; familyId: string; userId: string };

const invalidRefresh = () => unauthorized("invalid_refresh_token", "invalid or expired refresh token");

/**
 * Rotates a refresh token. The presented row is locked (SELECT ... FOR UPDATE), so concurrent
 * refreshes of one token are serialised: the first creates the successor, the others, inside the
 * grace window, get the same successor back (it is derived from the token, see crypto.ts). A token
 * used again after the window is a stolen-token signal: the whole family is revoked.
 */
export async function refresh({ ctx, input }: { ctx: AuthContext; input: RefreshInput }): Promise<TokenPair> {
  const outcome = await ctx.db.transaction(async (tx): Promise<Outcome> => {
    const [row] = await tx
      .select()
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, hashToken(input.refresh_token)))
      .for("update");
    const now = new Date();
    if (!row) return { kind: "invalid", reason: "unknown" };
    if (row.revokedAt) return { kind: "invalid", reason: `revoked:${row.revokedReason}` };
    if (row.expiresAt <= now) return { kind: "invalid", reason: "expired" };
    const successor = await successorOf(ctx.secrets, input.refresh_token);
    const rotated = { kind: "rotated", successor, familyId: row.familyId, userId: row.userId } as const;
    if (!row.usedAt) {
      await tx.insert(refreshTokens).values({
        familyId: row.familyId,
        userId: row.userId,
        tokenHash: hashToken(successor),
        parentId: row.id,
        expiresAt: refreshExpiry(ctx),
      });
      await tx.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, row.id));
      return rotated;
    }
    if (now.getTime() - row.usedAt.getTime() <= ctx.env.AUTH_REFRESH_GRACE_S * 1000) {
      const [next] = await tx
        .select({ revokedAt: refreshTokens.revokedAt })
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, hashToken(successor)));
      return next && !next.revokedAt ? rotated : { kind: "invalid", reason: "successor_revoked" };
    }
    await tx
      .update(refreshTokens)
      .set({ revokedAt: now, revokedReason: "reuse_detected" })
      .where(and(eq(refreshTokens.familyId, row.familyId), isNull(refreshTokens.revokedAt)));
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
  // The tier is read now, so a tier change reaches the next access token.
  const [user] = await ctx.db
    .select({ id: users.id, tier: users.tier })
    .from(users)
    .where(eq(users.id, outcome.userId));
  if (!user) throw invalidRefresh();
  return tokenPair(ctx, user, outcome.familyId, outcome.successor);
}
