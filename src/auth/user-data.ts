import { and, asc, eq, isNotNull, or, sql } from "drizzle-orm";
import { DEFAULT_CLOCK_TOLERANCE_S } from "../shared/auth/verifier";
import type { Database } from "../shared/db";
import { ERASING_SERVICES } from "../shared/events/user-deleted";
import type { AuthContext } from "./context";
import { deletedUsers, erasures, mailOutbox, sessions, users } from "./tables";

/** `erased` now; `waiting` for a service's report; `not_deleted`, or `erased_before` (a late report). */
export type EraseOutcome = "erased" | "waiting" | "not_deleted" | "erased_before";

/**
 * Auth's part of an erasure, and the last one: once chat, agent and billing have each reported
 * theirs, the user row goes, and with it (cascade) the wrapped encryption key, sessions, refresh
 * and mailed tokens, exports; then the erasure bookkeeping. Mails already sent are deleted; one
 * still waiting (the deletion's confirmation) loses its user id and is sent anyway. Only
 * `deleted_users` (id and time) remains. Idempotent; the rows are locked so two replicas finishing
 * at once do it once.
 */
export async function eraseUser(ctx: AuthContext, userId: string): Promise<EraseOutcome> {
  return ctx.db.transaction(async (tx) => {
    const [deleted] = await tx.select().from(deletedUsers).where(eq(deletedUsers.userId, userId)).for("update");
    if (!deleted) return "not_deleted";
    const reported = await tx.select({ service: erasures.service }).from(erasures).where(eq(erasures.userId, userId));
    const done = new Set(reported.map((row) => row.service));
    const [row] = await tx.select({ id: users.id }).from(users).where(eq(users.id, userId));
    if (!row) return "erased_before";
    if (!ERASING_SERVICES.every((service) => done.has(service))) return "waiting";
    await keepEndedSessions(tx, userId, accessTokenLifetimeMs(ctx));
    await tx.delete(users).where(eq(users.id, userId));
    await tx.delete(erasures).where(eq(erasures.userId, userId));
    await tx
      .delete(mailOutbox)
      .where(and(eq(mailOutbox.userId, userId), or(isNotNull(mailOutbox.sentAt), isNotNull(mailOutbox.failedAt))));
    await tx.update(mailOutbox).set({ userId: null }).where(eq(mailOutbox.userId, userId));
    return "erased";
  });
}

/**
 * The user's sessions go with the account, and with them the durable record that they were ended:
 * their ids (nothing of the user) are kept in `auth.ended_sessions` until the last access token
 * they issued has expired, so a process starting while Redis has lost its copy still refuses them.
 */
async function keepEndedSessions(tx: Database, userId: string, lifetimeMs: number): Promise<void> {
  await tx.execute(sql`
    insert into auth.ended_sessions (session_id, until)
    select id, revoked_at + ${`${lifetimeMs} milliseconds`}::interval
    from auth.sessions
    where user_id = ${userId}::uuid and revoked_at is not null
      and revoked_at + ${`${lifetimeMs} milliseconds`}::interval > now()
    on conflict (session_id) do nothing`);
}

/** How long an access token may be accepted after it was issued, as the verifier counts it. */
const accessTokenLifetimeMs = (ctx: AuthContext): number =>
  (ctx.env.ACCESS_TOKEN_TTL_S + DEFAULT_CLOCK_TOLERANCE_S) * 1000;

/** The profile and the sessions (devices) of the account, as auth holds them. */
export async function exportUser(ctx: AuthContext, userId: string) {
  const [user] = await ctx.db.select().from(users).where(eq(users.id, userId));
  const rows = await ctx.db.select().from(sessions).where(eq(sessions.userId, userId)).orderBy(asc(sessions.createdAt));
  return {
    profile: user
      ? {
          id: user.id,
          email: user.email,
          display_name: user.displayName,
          tier: user.tier,
          locale: user.locale,
          email_verified_at: user.emailVerifiedAt?.toISOString() ?? null,
          created_at: user.createdAt.toISOString(),
          updated_at: user.updatedAt.toISOString(),
        }
      : null,
    sessions: rows.map((session) => ({
      id: session.id,
      device_name: session.deviceName,
      created_at: session.createdAt.toISOString(),
      last_used_at: session.lastUsedAt?.toISOString() ?? null,
      ended_at: session.revokedAt?.toISOString() ?? null,
      ended_because: session.revokedReason,
    })),
  };
}
