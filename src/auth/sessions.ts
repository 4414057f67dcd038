import { and, eq, inArray, isNull, ne } from "drizzle-orm";
import { SignJWT } from "jose";
import { ACCESS_TOKEN_ALG, DEFAULT_CLOCK_TOLERANCE_S } from "../shared/auth/verifier";
import type { Database } from "../shared/db";
import type { Tier } from "../shared/tiers";
import { refuseDeletedAccount } from "./account-state";
import type { AuthContext } from "./context";
import { hashToken, newRefreshToken } from "./crypto";
import type { TokenPair } from "./model";
import { refreshTokens, sessions } from "./tables";

/** An access token for `userId` in session `sessionId`, signed with the ring's current key. */
export async function signAccessToken(
  ctx: AuthContext,
  claims: { userId: string; tier: Tier; sessionId: string },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tier: claims.tier, sid: claims.sessionId })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid: ctx.ring.signing.kid, typ: "JWT" })
    .setSubject(claims.userId)
    .setIssuer(ctx.env.JWT_ISSUER)
    .setAudience(ctx.env.JWT_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + ctx.env.ACCESS_TOKEN_TTL_S)
    .setJti(crypto.randomUUID())
    .sign(ctx.ring.signing.key);
}

export const refreshExpiry = (ctx: AuthContext): Date => new Date(Date.now() + ctx.env.REFRESH_TOKEN_TTL_S * 1000);

/**
 * Starts a session: a new refresh-token family whose id is the access token's `sid`, named after
 * the device (`deviceName`, see client-hints.ts) for the list of sessions.
 */
export async function startSession(
  ctx: AuthContext,
  user: { id: string; tier: Tier },
  deviceName: string | null = null,
): Promise<TokenPair> {
  const familyId = crypto.randomUUID();
  const refreshToken = newRefreshToken();
  await ctx.db.transaction(async (tx) => {
    // A sign-in racing the account's deletion either commits first (and is ended by it) or is refused.
    await refuseDeletedAccount(tx, user.id);
    await tx.insert(sessions).values({ id: familyId, userId: user.id, deviceName, lastUsedAt: new Date() });
    await tx.insert(refreshTokens).values({
      familyId,
      userId: user.id,
      tokenHash: hashToken(refreshToken),
      expiresAt: refreshExpiry(ctx),
    });
  });
  return tokenPair(ctx, user, familyId, refreshToken);
}

export async function tokenPair(
  ctx: AuthContext,
  user: { id: string; tier: Tier },
  familyId: string,
  refreshToken: string,
): Promise<TokenPair> {
  return {
    access_token: await signAccessToken(ctx, { userId: user.id, tier: user.tier, sessionId: familyId }),
    token_type: "Bearer",
    expires_in: ctx.env.ACCESS_TOKEN_TTL_S,
    refresh_token: refreshToken,
  };
}

/**
 * Ends sessions of a user: one, every one, or every one but the caller's. Returns the sessions it
 * ended; `endAccessTokens` stops their access tokens too.
 *
 * The session row is marked first. A rotation holds that row's lock while it checks the mark and
 * inserts a successor, so either it ran before (its successor is committed and the second statement,
 * a fresh snapshot, revokes it) or after (it sees the mark and refuses). Neither order leaves a live
 * refresh token in an ended session; test/auth/revocation-race.test.ts runs the race.
 */
export async function revokeSessions(
  db: Database,
  options: { userId: string; reason: string; familyId?: string; exceptFamilyId?: string },
): Promise<string[]> {
  const conditions = [eq(sessions.userId, options.userId), isNull(sessions.revokedAt)];
  if (options.familyId) conditions.push(eq(sessions.id, options.familyId));
  if (options.exceptFamilyId) conditions.push(ne(sessions.id, options.exceptFamilyId));
  const now = new Date();
  const ended = await db
    .update(sessions)
    .set({ revokedAt: now, revokedReason: options.reason })
    .where(and(...conditions))
    .returning({ id: sessions.id });
  const ids = ended.map((row) => row.id);
  await revokeRefreshTokens(db, ids, options.reason, now);
  return ids;
}

/** Marks every live refresh token of these sessions revoked; the session row already says so. */
export async function revokeRefreshTokens(db: Database, familyIds: string[], reason: string, now: Date) {
  if (familyIds.length === 0) return;
  await db
    .update(refreshTokens)
    .set({ revokedAt: now, revokedReason: reason })
    .where(and(inArray(refreshTokens.familyId, familyIds), isNull(refreshTokens.revokedAt)));
}

/**
 * Ends the access tokens of sessions whose refresh tokens were revoked, in every service, for as
 * long as any of them could still be valid. Best effort after the commit: if Redis is down the
 * tokens run out on their own within ACCESS_TOKEN_TTL_S, as they did before revocation existed.
 */
export async function endAccessTokens(ctx: AuthContext, familyIds: string[], reason: string): Promise<void> {
  if (familyIds.length === 0) return;
  const until = Date.now() + (ctx.env.ACCESS_TOKEN_TTL_S + DEFAULT_CLOCK_TOLERANCE_S) * 1000;
  try {
    await ctx.platform.revocations.revoke(familyIds, until);
    ctx.logger.info({ sessions: familyIds.length, reason }, "access tokens of ended sessions revoked");
  } catch (error) {
    ctx.logger.warn({ err: String(error), reason }, "access tokens of ended sessions stay valid until they expire");
  }
}
