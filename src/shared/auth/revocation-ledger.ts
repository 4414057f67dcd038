import { gt, lte } from "drizzle-orm";
import { endedSessions, sessions } from "../../auth/tables";
import type { Database } from "../db";

/** A revoked session and the last moment any of its access tokens could still be valid. */
export interface RevokedSession {
  id: string;
  untilMs: number;
}

/** The durable record of ended sessions, read when Redis has lost (or never had) its copy. */
export interface RevocationLedger {
  revokedSince(nowMs: number): Promise<RevokedSession[]>;
}

/**
 * Ended sessions as auth records them in PostgreSQL (`auth.sessions.revoked_at`), the source of
 * truth: a session ended at T has tokens valid until at most T + `tokenLifetimeMs`, so only the
 * sessions ended within that window are read (an index range, a handful of rows). The sessions of
 * accounts erased meanwhile are gone from `auth.sessions`; `auth.ended_sessions` keeps theirs until
 * their tokens have expired (and loses each row past that, here).
 */
export function databaseLedger(db: Database, tokenLifetimeMs: number): RevocationLedger {
  return {
    async revokedSince(nowMs) {
      const now = new Date(nowMs);
      const [rows, erased] = await Promise.all([
        db
          .select({ id: sessions.id, revokedAt: sessions.revokedAt })
          .from(sessions)
          .where(gt(sessions.revokedAt, new Date(nowMs - tokenLifetimeMs))),
        db.select().from(endedSessions).where(gt(endedSessions.until, now)),
      ]);
      await db.delete(endedSessions).where(lte(endedSessions.until, now));
      return [
        ...rows.flatMap((row) =>
          row.revokedAt ? [{ id: row.id, untilMs: row.revokedAt.getTime() + tokenLifetimeMs }] : [],
        ),
        ...erased.map((row) => ({ id: row.sessionId, untilMs: row.until.getTime() })),
      ];
    },
  };
}
