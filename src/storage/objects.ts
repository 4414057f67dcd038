import { and, desc, eq, lt, or } from "drizzle-orm";
import { notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { StorageContext } from "./context";
import { decodeCursor, encodeCursor } from "./cursor";
import type { DownloadUrl, ListQuery, ObjectList, StoredObject } from "./model";
import { objectKey } from "./object-store";
import { type ObjectKind, objects } from "./tables";
import { forget, storeCall } from "./uploads";

type ObjectRow = typeof objects.$inferSelect;

export function toStoredObject(row: ObjectRow): StoredObject {
  const view: StoredObject = {
    id: row.id,
    kind: row.kind,
    name: row.name,
    content_type: row.contentType,
    size: row.size,
    sha256: row.sha256,
    created_at: row.createdAt.toISOString(),
    completed_at: row.completedAt?.toISOString() ?? null,
    indexed: row.indexedAt !== null,
  };
  if (row.kind === "backup" && row.deviceId && row.backupCreatedAt) {
    view.backup = {
      device_id: row.deviceId,
      created_at: row.backupCreatedAt.toISOString(),
      header_version: row.headerVersion ?? 0,
    };
  }
  return view;
}

/** A page of the user's stored objects of one kind, newest first. */
export async function listStored(
  ctx: StorageContext,
  userId: string,
  kind: ObjectKind,
  input: ListQuery & { deviceId?: string },
): Promise<ObjectList> {
  const after = input.cursor ? decodeCursor(input.cursor) : undefined;
  const rows = await ctx.db
    .select()
    .from(objects)
    .where(
      and(
        eq(objects.userId, userId),
        eq(objects.kind, kind),
        eq(objects.status, "ready"),
        input.deviceId ? eq(objects.deviceId, input.deviceId) : undefined,
        after
          ? or(lt(objects.createdAt, after.at), and(eq(objects.createdAt, after.at), lt(objects.id, after.id)))
          : undefined,
      ),
    )
    .orderBy(desc(objects.createdAt), desc(objects.id))
    .limit(input.limit + 1);
  const items = rows.slice(0, input.limit);
  const last = items.at(-1);
  return {
    items: items.map(toStoredObject),
    next_cursor: rows.length > input.limit && last ? encodeCursor(last.createdAt, last.id) : null,
  };
}

/** GET /objects: the user's files. */
export const listObjects = ({ ctx, user, input }: VerbArgs<StorageContext, ListQuery>) =>
  listStored(ctx, user.userId, "file", input);

/** The user's stored object (a file or a backup), or 404: another user's id is as unknown as a made-up one. */
export async function readyObject(ctx: StorageContext, userId: string, id: string): Promise<ObjectRow> {
  const [row] = await ctx.db
    .select()
    .from(objects)
    .where(and(eq(objects.id, id), eq(objects.userId, userId), eq(objects.status, "ready")));
  if (!row) throw notFound("object");
  return row;
}

/** GET /objects/:id. */
export async function getObject({ ctx, user, input }: VerbArgs<StorageContext, { id: string }>): Promise<StoredObject> {
  return toStoredObject(await readyObject(ctx, user.userId, input.id));
}

/** GET /objects/:id/download: a short-lived GET URL bound to the object's key. */
export async function downloadObject({
  ctx,
  user,
  input,
  origin,
}: VerbArgs<StorageContext, { id: string }> & { origin: string }): Promise<DownloadUrl> {
  const row = await readyObject(ctx, user.userId, input.id);
  const signed = await storeCall(ctx, "presignGet", () =>
    ctx.store.presignGet(objectKey(user.userId, row.id), {
      expiresIn: ctx.config.urlTtlS,
      origin: origin,
      filename: row.name,
      contentType: row.contentType,
    }),
  );
  return { url: signed.url, expires_at: new Date(Date.now() + ctx.config.urlTtlS * 1000).toISOString() };
}

/** DELETE /objects/:id: the bytes, the document's vectors, then the row and its quota. */
export async function deleteObject({ ctx, user, input }: VerbArgs<StorageContext, { id: string }>): Promise<void> {
  const row = await readyObject(ctx, user.userId, input.id);
  await removeObject(ctx, row);
}

export async function removeObject(ctx: StorageContext, row: ObjectRow): Promise<void> {
  await storeCall(ctx, "delete", () => ctx.store.delete(objectKey(row.userId, row.id)));
  await ctx.documents.removeObject(row.userId, row.id);
  await forget(ctx, row.userId, row.id);
}
