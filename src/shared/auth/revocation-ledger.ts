import { gt } from "drizzle-orm";
import { sessions } from "../../auth/tables";
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
 * sessions ended within that window are read (an index range, a handful of rows).
 */
export function databaseLedger(db: Database, tokenLifetimeMs: number): RevocationLedger {
  return {
    async revokedSince(nowMs) {
      const rows = await db
        .select({ id: sessions.id, revokedAt: sessions.revokedAt })
        .from(sessions)
        .where(gt(sessions.revokedAt, new Date(nowMs - tokenLifetimeMs)));
      return rows.flatMap((row) =>
        row.revokedAt ? [{ id: row.id, untilMs: row.revokedAt.getTime() + tokenLifetimeMs }] : [],
      );
    },
  };
}
