import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { AuthContext } from "./context";
import type { SessionList, SessionParams } from "./model";
import { endAccessTokens, revokeSessions } from "./sessions";
import { sessions } from "./tables";

/**
 * The caller's live sessions, most recently used first. A session lives until it is ended or its
 * last refresh token expires, REFRESH_TOKEN_TTL_S after its last use.
 */
export async function listSessions({ ctx, user }: VerbArgs<AuthContext>): Promise<SessionList> {
  const lastUsed = sql<Date>`coalesce(${sessions.lastUsedAt}, ${sessions.createdAt})`;
  const rows = await ctx.db
    .select({ id: sessions.id, deviceName: sessions.deviceName, createdAt: sessions.createdAt, lastUsed })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, user.userId),
        isNull(sessions.revokedAt),
        sql`${lastUsed} > now() - ${ctx.env.REFRESH_TOKEN_TTL_S} * interval '1 second'`,
      ),
    )
    .orderBy(desc(lastUsed))
    .limit(200);
  return {
    sessions: rows.map((row) => ({
      id: row.id,
      device_name: row.deviceName,
      created_at: row.createdAt.toISOString(),
      last_used_at: new Date(row.lastUsed).toISOString(),
      current: row.id === user.sessionId,
    })),
  };
}

/**
 * Ends one of the caller's sessions as logout does: its refresh tokens, its access tokens in every
 * service and its device sockets. Ending an ended session again is a success (idempotent, 204); a
 * session that is not the caller's is 404 like one that does not exist.
 */
export async function endSession({ ctx, user, input }: VerbArgs<AuthContext, SessionParams>): Promise<void> {
  const ended = await revokeSessions(ctx.db, { userId: user.userId, reason: "logout", familyId: input.id });
  if (ended.length > 0) {
    await endAccessTokens(ctx, ended, "logout");
    return;
  }
  const [own] = await ctx.db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.id, input.id), eq(sessions.userId, user.userId)));
  if (!own) throw notFound("session");
}
