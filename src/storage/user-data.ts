import { asc, eq } from "drizzle-orm";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import type { StorageContext } from "./context";
import { objectKey } from "./object-store";
import { STORAGE_PREFIX } from "./routes";
import { objects, usage } from "./tables";

/**
 * Erases everything storage holds of a user: each object's bytes in the bucket (an open multipart
 * upload aborted first), the document chunks in the search index, then the rows and the usage row.
 * Idempotent: an object already gone counts as deleted, so a redelivery after a partial erasure
 * finishes it. The store unreachable: throws, and the event comes back later.
 */
export async function eraseUser(ctx: StorageContext, userId: string): Promise<void> {
  const rows = await ctx.db.select().from(objects).where(eq(objects.userId, userId));
  for (const row of rows) {
    const key = objectKey(userId, row.id);
    if (row.status !== "ready" && row.mode === "multipart" && row.uploadId) {
      await ctx.store
        .abortMultipart(key, row.uploadId)
        .catch((error) => ctx.logger.warn({ err: error, object_id: row.id }, "multipart abort failed during erasure"));
    }
    await ctx.store.delete(key);
  }
  await ctx.documents.removeUser(userId);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(objects).where(eq(objects.userId, userId));
    await tx.delete(usage).where(eq(usage.userId, userId));
  });
}

/**
 * The user's files and backups as listed by the API, each with the signed-in route that answers a
 * fresh download URL: the archive is kept a day, far longer than a presigned URL may live, and a
 * URL in it would be a credential for as long as it lived.
 */
export async function exportUser(ctx: StorageContext, userId: string) {
  const [quota] = await ctx.db.select().from(usage).where(eq(usage.userId, userId));
  const rows = await ctx.db.select().from(objects).where(eq(objects.userId, userId)).orderBy(asc(objects.createdAt));
  const base = `${ctx.platform.env.PUBLIC_URL.replace(/\/$/, "")}${STORAGE_PREFIX}/objects`;
  const describe = (row: (typeof rows)[number]) => ({
    id: row.id,
    name: row.name,
    content_type: row.contentType,
    size: row.size,
    sha256: row.sha256,
    created_at: row.createdAt.toISOString(),
    indexed_for_search: row.indexedAt !== null,
    download: `${base}/${row.id}/download`,
  });
  const ready = rows.filter((row) => row.status === "ready");
  return {
    usage: { bytes: quota?.bytes ?? 0, objects: quota?.objects ?? 0 },
    files: ready.filter((row) => row.kind === "file").map(describe),
    // Backups are ciphertext: the app decrypts them with the user's data key (auth's encryption-key route).
    backups: ready
      .filter((row) => row.kind === "backup")
      .map((row) => ({
        ...describe(row),
        device_id: row.deviceId,
        backup_created_at: row.backupCreatedAt?.toISOString() ?? null,
        header_version: row.headerVersion,
      })),
    uploads_in_progress: rows
      .filter((row) => row.status !== "ready")
      .map((row) => ({ id: row.id, name: row.name, size: row.size })),
  };
}

/** Storage's consumers of account deletions and export requests (group "storage"). */
export function startStorageUserData(ctx: StorageContext): Promise<UserDataConsumers> {
  return startUserDataConsumers(ctx.platform, ctx.logger, {
    service: "storage",
    erase: (userId) => eraseUser(ctx, userId),
    export: (userId) => exportUser(ctx, userId),
  });
}
