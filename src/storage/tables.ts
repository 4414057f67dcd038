import { sql } from "drizzle-orm";
import { bigint, index, integer, pgSchema, real, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { Tier } from "../shared/tiers";

export const storage = pgSchema("storage");

/**
 * One row per user: what the user's objects take, uploads in progress included. An upload reserves
 * its declared size here when it starts, in one conditional upsert that row-locks this row, so
 * concurrent uploads cannot together cross the tier's quota; an abort, expiry, mismatch or delete
 * gives it back in the transaction that removes the object.
 */
export const usage = storage.table("usage", {
  userId: text("user_id").primaryKey(),
  bytes: bigint("bytes", { mode: "number" }).notNull().default(0),
  objects: integer("objects").notNull().default(0),
  /** The tier of the user's last upload: backup retention runs without a token and keeps by it. */
  tier: text("tier").$type<Tier>().notNull().default("free"),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

export type ObjectKind = "file" | "backup";
/** `verifying`: a completion is reading the object; no second one may start meanwhile. */
export type ObjectStatus = "uploading" | "verifying" | "ready";
export type UploadMode = "single" | "multipart";

/**
 * Files and backups. The storage key is `users/<user id>/<id>`, made here from the row, never
 * from client input. A row is `uploading` from the upload's start until its content is verified.
 */
export const objects = storage.table(
  "objects",
  {
    id: uuid("id").primaryKey(),
    userId: text("user_id").notNull(),
    kind: text("kind").$type<ObjectKind>().notNull(),
    status: text("status").$type<ObjectStatus>().notNull(),
    name: text("name").notNull(),
    contentType: text("content_type").notNull(),
    /** Declared at the upload's start (and reserved); the stored object is verified to have it. */
    size: bigint("size", { mode: "number" }).notNull(),
    /** Lowercase hex SHA-256 of the content, declared by the client and verified on completion. */
    sha256: text("sha256").notNull(),
    mode: text("mode").$type<UploadMode>().notNull(),
    /** The S3 (or local) multipart upload id while a multipart upload is open. */
    uploadId: text("upload_id"),
    partSize: integer("part_size").notNull(),
    /** An unfinished upload past this is aborted and its reservation released. */
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    /** Backups: the device that made it, when it made it, the version of its encryption header. */
    deviceId: text("device_id"),
    backupCreatedAt: timestamp("backup_created_at", { withTimezone: true }),
    headerVersion: integer("header_version"),
    /** Set once the document's chunks are in the search index. */
    indexedAt: timestamp("indexed_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp("completed_at", { withTimezone: true }),
  },
  (table) => [
    index("objects_user_list_idx").on(table.userId, table.kind, table.status, table.createdAt, table.id),
    index("objects_expiry_idx").on(table.expiresAt).where(sql`${table.status} = 'uploading'`),
  ],
);

/** Chunks of indexed documents, with their embeddings, when no Qdrant is configured. */
export const documentChunks = storage.table(
  "document_chunks",
  {
    id: uuid("id").primaryKey(),
    userId: text("user_id").notNull(),
    objectId: uuid("object_id").notNull(),
    position: integer("position").notNull(),
    text: text("text").notNull(),
    embedding: real("embedding").array().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    index("document_chunks_user_idx").on(table.userId),
    index("document_chunks_object_idx").on(table.objectId),
  ],
);
