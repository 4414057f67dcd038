import { sql } from "drizzle-orm";
import { bigint, check, index, pgSchema, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import type { Tier } from "../shared/tiers";

export const authSchema = pgSchema("auth");

export const users = authSchema.table(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** Stored trimmed and lower-cased; the unique index on lower(email) guards the rule anyway. */
    email: text("email").notNull(),
    displayName: text("display_name"),
    /** argon2id PHC string from Bun.password. */
    passwordHash: text("password_hash").notNull(),
    tier: text("tier").$type<Tier>().notNull().default("free"),
    /** `occurredAt` (ms) of the last tier-changed event applied; older events are ignored. */
    tierChangedAt: bigint("tier_changed_at", { mode: "number" }),
    /** The user's data key, wrapped with AES-256-GCM under the master key (see crypto.ts). */
    encryptionKey: text("encryption_key").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("users_email_lower_key").on(sql`lower(${table.email})`),
    check("users_tier_check", sql`${table.tier} in ('free', 'pro', 'power', 'team')`),
  ],
);

/**
 * Sessions: one per sign-in, the family of refresh tokens rotated from it and the `sid` of its access
 * tokens. Ending a session marks this row, and rotation checks the mark while holding this row's lock,
 * so a refresh racing a logout can never leave a live successor behind (see refresh.ts).
 */
export const sessions = authSchema.table(
  "sessions",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    /** logout, reuse_detected, tier_downgrade, password_changed. */
    revokedReason: text("revoked_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("sessions_user_idx").on(table.userId), index("sessions_revoked_at_idx").on(table.revokedAt)],
);

/**
 * Refresh tokens, stored only as SHA-256 hashes. A login starts a family (the session); each
 * refresh marks the presented token used and inserts its successor in the same family.
 */
export const refreshTokens = authSchema.table(
  "refresh_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    familyId: uuid("family_id")
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull(),
    parentId: uuid("parent_id"),
    /** When this token was exchanged for its successor; a later use inside the grace window replays it. */
    usedAt: timestamp("used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    /** logout, reuse_detected, tier_downgrade, password_changed. */
    revokedReason: text("revoked_reason"),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("refresh_tokens_hash_key").on(table.tokenHash),
    index("refresh_tokens_family_idx").on(table.familyId),
    index("refresh_tokens_user_idx").on(table.userId),
  ],
);
