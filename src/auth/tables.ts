import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

import type { Tier } from "../shared/tiers";

/** bytea, which drizzle's pg-core has no builder for: the archive of an export. */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" });

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
    /** The language of the user's mails (`en`, `it`): set at register from Accept-Language, then by PUT /me. */
    locale: text("locale").notNull().default("en"),
    /** When the address was confirmed through the link mailed to it; null until then. */
    emailVerifiedAt: timestamp("email_verified_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("users_email_lower_key").on(sql`lower(${table.email})`),
    check("users_tier_check", sql`${table.tier} in ('free', 'pro', 'power', 'team')`),
    check("users_locale_check", sql`${table.locale} in ('en', 'it')`),
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
    /** What the client called itself at sign-in (the device name, else its user agent), for GET /auth/sessions. */
    deviceName: text("device_name"),
    /** The last refresh of the session's tokens (sign-in for a session never refreshed). */
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
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

/**
 * Single-use tokens mailed to a user: a password reset, the verification of their address, or the
 * confirmation of a new one. Stored only as SHA-256 hashes; `email` is the address the link went to
 * (for a change, the new address, which takes effect when it confirms).
 */
export const emailTokens = authSchema.table(
  "email_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    purpose: text("purpose").$type<"password_reset" | "email_verify" | "email_change">().notNull(),
    tokenHash: text("token_hash").notNull(),
    email: text("email").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    usedAt: timestamp("used_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("email_tokens_hash_key").on(table.tokenHash),
    index("email_tokens_user_idx").on(table.userId),
    check("email_tokens_purpose_check", sql`${table.purpose} in ('password_reset', 'email_verify', 'email_change')`),
  ],
);

/**
 * The durable outbox of mails: written in the transaction of what causes the mail, sent by the
 * outbox worker with backoff until SMTP takes it. `user_id` has no foreign key on purpose: the
 * confirmation of an account's deletion is sent after the user row is gone. A sent mail's
 * payload is emptied, so no address or link outlives its sending.
 */
export const mailOutbox = authSchema.table(
  "mail_outbox",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id"),
    toAddress: text("to_address").notNull(),
    template: text("template").notNull(),
    locale: text("locale").notNull(),
    payload: jsonb("payload").notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    /** Given up: refused for good by the relay, or still unsent after MAIL_GIVE_UP_AFTER_S. Emptied like a sent one. */
    failedAt: timestamp("failed_at", { withTimezone: true }),
    lastError: text("last_error"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    index("mail_outbox_due_idx")
      .on(table.nextAttemptAt)
      .where(sql`${table.sentAt} is null and ${table.failedAt} is null`),
  ],
);

/** Accounts erased: only the id and when, for audit. Nothing else of the user survives. */
export const deletedUsers = authSchema.table("deleted_users", {
  userId: uuid("user_id").primaryKey(),
  deletedAt: timestamp("deleted_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Which services have erased a deleted user's data; the row set is removed once every service
 * has (and with it the last row keyed by the user besides `deleted_users`).
 */
export const erasures = authSchema.table(
  "erasures",
  {
    userId: uuid("user_id").notNull(),
    service: text("service").notNull(),
    erasedAt: timestamp("erased_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.userId, table.service] })],
);

/** Data exports: requested by the owner, assembled from every service's part, kept 24 h once ready. */
export const dataExports = authSchema.table(
  "exports",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    /** pending (parts arriving), ready (archive kept until expires_at), failed, expired. */
    status: text("status").$type<"pending" | "ready" | "failed" | "expired">().notNull().default("pending"),
    archive: bytea("archive"),
    archiveSha256: text("archive_sha256"),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    readyAt: timestamp("ready_at", { withTimezone: true }),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
  },
  (table) => [index("exports_user_idx").on(table.userId)],
);

/** One service's part of an export, as it arrived (JSON), until the archive is assembled. */
export const exportParts = authSchema.table(
  "export_parts",
  {
    exportId: uuid("export_id")
      .notNull()
      .references(() => dataExports.id, { onDelete: "cascade" }),
    service: text("service").notNull(),
    data: jsonb("data").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.exportId, table.service] })],
);

/**
 * Sessions of erased accounts whose access tokens may still be valid: the user's `sessions` rows
 * go with the account, and this keeps their revocation (by session id only, nothing of the user)
 * until the last token they issued has expired, for a process that starts while Redis has lost its
 * copy (see revocation-ledger.ts). Rows past `until` are removed as the ledger is read.
 */
export const endedSessions = authSchema.table(
  "ended_sessions",
  {
    sessionId: uuid("session_id").primaryKey(),
    until: timestamp("until", { withTimezone: true }).notNull(),
  },
  (table) => [index("ended_sessions_until_idx").on(table.until)],
);
