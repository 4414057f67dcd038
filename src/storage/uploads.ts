import { and, eq, sql } from "drizzle-orm";
import { conflict, notFound, ServiceError } from "../shared/errors";
import { limitsFor } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import { pruneBackups } from "./backups";
import type { StorageContext } from "./context";
import type {
  CompleteInput,
  CreateUploadInput,
  PartUrls,
  PartUrlsInput,
  StoredObject,
  Upload,
  UploadStatus,
} from "./model";
import { type CompletedPart, objectKey } from "./object-store";
import { toStoredObject } from "./objects";
import { release, reserve } from "./quota";
import { type ObjectKind, objects } from "./tables";
import { verifyObject } from "./verify";

type ObjectRow = typeof objects.$inferSelect;

export interface NewUpload {
  kind: ObjectKind;
  name: string;
  size: number;
  sha256: string;
  contentType: string;
  backup?: { deviceId: string; createdAt: Date; headerVersion: number };
}

export const storageUnavailable = (error: unknown) =>
  new ServiceError(
    "storage_unavailable",
    502,
    "the object store did not answer as expected",
    {},
    {
      reason: error instanceof Error ? error.name : "unknown",
    },
  );

/** Runs a call to the object store; its failures are a 502 for the client, never a 500. */
export async function storeCall<T>(ctx: StorageContext, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    ctx.logger.warn({ err: error, call: what }, "object store call failed");
    throw storageUnavailable(error);
  }
}

/** POST /uploads: a file. */
export function createUpload({
  ctx,
  user,
  input,
  origin,
}: VerbArgs<StorageContext, CreateUploadInput> & { origin: string }) {
  return startUpload(ctx, user, origin, {
    kind: "file",
    name: input.name,
    size: input.size,
    sha256: input.sha256,
    contentType: input.content_type,
  });
}

/**
 * Reserves the quota and records the upload in one transaction, then opens it in the store: one
 * PUT URL up to the part size, a multipart upload beyond it.
 */
export async function startUpload(
  ctx: StorageContext,
  user: VerbArgs<StorageContext>["user"],
  origin: string,
  upload: NewUpload,
): Promise<Upload> {
  const limits = limitsFor(user.tier);
  if (upload.size > limits.maxObjectBytes) {
    throw new ServiceError(
      "object_too_large",
      413,
      `the ${user.tier} tier takes objects up to ${limits.maxObjectBytes} bytes`,
    );
  }
  const id = crypto.randomUUID();
  const partSize = ctx.store.partSize;
  const mode = upload.size > partSize ? "multipart" : "single";
  const expiresAt = new Date(Date.now() + ctx.config.uploadTtlS * 1000);
  await ctx.db.transaction(async (tx) => {
    await reserve(tx, user.userId, user.tier, upload.size);
    await tx.insert(objects).values({
      id,
      userId: user.userId,
      kind: upload.kind,
      status: "uploading",
      name: upload.name,
      contentType: upload.contentType,
      size: upload.size,
      sha256: upload.sha256,
      mode,
      partSize,
      expiresAt,
      deviceId: upload.backup?.deviceId,
      backupCreatedAt: upload.backup?.createdAt,
      headerVersion: upload.backup?.headerVersion,
    });
  });
  const key = objectKey(user.userId, id);
  const result: Upload = {
    upload_id: id,
    kind: upload.kind,
    mode,
    size: upload.size,
    part_size: partSize,
    part_count: partCount(upload.size, partSize),
    expires_at: expiresAt.toISOString(),
  };
  try {
    if (mode === "single") {
      result.url = await storeCall(ctx, "presignPut", () =>
        ctx.store.presignPut(key, { contentType: upload.contentType, expiresIn: ctx.config.urlTtlS, origin }),
      );
    } else {
      const uploadId = await storeCall(ctx, "createMultipart", () =>
        ctx.store.createMultipart(key, upload.contentType),
      );
      await ctx.db.update(objects).set({ uploadId }).where(eq(objects.id, id));
    }
  } catch (error) {
    await forget(ctx, user.userId, id);
    throw error;
  }
  return result;
}

export const partCount = (size: number, partSize: number) => Math.max(1, Math.ceil(size / partSize));

/** The user's upload still in progress, or 404 (another user's id is as unknown as a made-up one). */
async function openUpload(ctx: StorageContext, userId: string, id: string): Promise<ObjectRow> {
  const [row] = await ctx.db
    .select()
    .from(objects)
    .where(and(eq(objects.id, id), eq(objects.userId, userId)));
  if (!row || row.status === "ready" || row.expiresAt.getTime() < Date.now()) throw notFound("upload");
  return row;
}

/** POST /uploads/:id/parts: presigned URLs for the parts asked for (a resumed client asks for the missing ones). */
export async function requestParts({
  ctx,
  user,
  input,
  origin,
}: VerbArgs<StorageContext, PartUrlsInput & { id: string }> & { origin: string }): Promise<PartUrls> {
  const row = await openUpload(ctx, user.userId, input.id);
  if (row.mode !== "multipart" || !row.uploadId) {
    throw conflict("not_multipart", "a single-PUT upload has its URL already; it has no parts");
  }
  const count = partCount(row.size, row.partSize);
  const beyond = input.part_numbers.filter((number) => number > count);
  if (beyond.length > 0) {
    throw new ServiceError("invalid_part", 422, `this upload has ${count} parts`, {}, { part_numbers: beyond });
  }
  const key = objectKey(user.userId, row.id);
  const uploadId = row.uploadId;
  const parts = await storeCall(ctx, "presignPart", () =>
    Promise.all(
      input.part_numbers.map(async (partNumber) => ({
        part_number: partNumber,
        ...(await ctx.store.presignPart(key, uploadId, partNumber, { expiresIn: ctx.config.urlTtlS, origin: origin })),
      })),
    ),
  );
  return { parts, expires_at: new Date(Date.now() + ctx.config.urlTtlS * 1000).toISOString() };
}

/** GET /uploads/:id: where the upload stands; for multipart, the parts the store has (ListParts). */
export async function getUpload({ ctx, user, input }: VerbArgs<StorageContext, { id: string }>): Promise<UploadStatus> {
  const row = await openUpload(ctx, user.userId, input.id);
  const count = partCount(row.size, row.partSize);
  const key = objectKey(user.userId, row.id);
  const uploadId = row.uploadId;
  const stored =
    row.mode === "multipart" && uploadId
      ? await storeCall(ctx, "listParts", () => ctx.store.listParts(key, uploadId))
      : [];
  const arrived = new Set(stored.map((part) => part.partNumber));
  const missing =
    row.mode === "multipart"
      ? Array.from({ length: count }, (_, index) => index + 1).filter((n) => !arrived.has(n))
      : [];
  return {
    upload_id: row.id,
    status: "uploading",
    mode: row.mode,
    size: row.size,
    part_size: row.partSize,
    part_count: count,
    parts: stored.map((part) => ({ part_number: part.partNumber, size: part.size, etag: part.etag })),
    missing,
    expires_at: row.expiresAt.toISOString(),
  };
}

/**
 * POST /uploads/:id/complete: assembles a multipart upload, then verifies the stored object's size
 * and SHA-256 against what was declared. A mismatch deletes the object and gives its quota back
 * (422 `size_mismatch` / `checksum_mismatch`); the client starts a new upload.
 */
export async function completeUpload({
  ctx,
  user,
  input,
}: VerbArgs<StorageContext, CompleteInput & { id: string }>): Promise<StoredObject> {
  const row = await claimForCompletion(ctx, user.userId, input.id);
  const key = objectKey(user.userId, row.id);
  try {
    if (row.mode === "multipart" && row.uploadId) await assemble(ctx, row, key, input.parts);
    const outcome = await verifyObject(ctx, key, row.size, row.sha256);
    ctx.completions.inc({ outcome: outcome === "ok" ? "stored" : outcome });
    if (outcome !== "ok") {
      await storeCall(ctx, "delete", () => ctx.store.delete(key));
      await forget(ctx, user.userId, row.id);
      const message =
        outcome === "size_mismatch"
          ? `the stored object does not have the declared ${row.size} bytes`
          : "the stored object's SHA-256 differs from the declared one";
      throw new ServiceError(outcome, 422, `${message}; it was deleted`);
    }
  } catch (error) {
    // Anything but a verdict (the store away, a part missing) leaves the upload open to retry.
    if (!(error instanceof ServiceError && ["size_mismatch", "checksum_mismatch"].includes(error.code))) {
      await ctx.db
        .update(objects)
        .set({ status: "uploading" })
        .where(and(eq(objects.id, row.id), eq(objects.status, "verifying")));
    }
    throw error;
  }
  const [ready] = await ctx.db
    .update(objects)
    .set({ status: "ready", uploadId: null, completedAt: new Date() })
    .where(and(eq(objects.id, row.id), eq(objects.status, "verifying")))
    .returning();
  if (!ready) throw notFound("upload");
  // A new backup may push an older one past the tier's retention: pruned now, not at the next sweep.
  if (ready.kind === "backup") await pruneBackups(ctx, user.userId, user.tier);
  return toStoredObject(ready);
}

/** Moves the upload to `verifying`, so a second completion (or the expiry sweep) cannot run beside this one. */
async function claimForCompletion(ctx: StorageContext, userId: string, id: string): Promise<ObjectRow> {
  const [row] = await ctx.db
    .update(objects)
    // A verification outlasting the upload's expiry must not be swept from under it.
    .set({ status: "verifying", expiresAt: sql`greatest(${objects.expiresAt}, now() + interval '1 hour')` })
    .where(
      and(
        eq(objects.id, id),
        eq(objects.userId, userId),
        eq(objects.status, "uploading"),
        sql`${objects.expiresAt} > now()`,
      ),
    )
    .returning();
  if (row) return row;
  const [current] = await ctx.db
    .select({ status: objects.status })
    .from(objects)
    .where(and(eq(objects.id, id), eq(objects.userId, userId)));
  if (current?.status === "verifying") throw conflict("upload_completing", "this upload is being completed already");
  if (current?.status === "ready") throw conflict("upload_completed", "this upload is complete already");
  throw notFound("upload");
}

/** CompleteMultipartUpload with every part 1..N, from the client's ETags or the store's list. */
async function assemble(ctx: StorageContext, row: ObjectRow, key: string, given: CompleteInput["parts"]) {
  const uploadId = row.uploadId as string;
  const count = partCount(row.size, row.partSize);
  const parts: CompletedPart[] = given
    ? given.map((part) => ({ partNumber: part.part_number, etag: part.etag }))
    : (await storeCall(ctx, "listParts", () => ctx.store.listParts(key, uploadId))).map(({ partNumber, etag }) => ({
        partNumber,
        etag,
      }));
  parts.sort((a, b) => a.partNumber - b.partNumber);
  const numbers = new Set(parts.map((part) => part.partNumber));
  const missing = Array.from({ length: count }, (_, index) => index + 1).filter((n) => !numbers.has(n));
  if (missing.length > 0 || parts.length !== count) {
    throw new ServiceError("upload_incomplete", 409, `parts are missing: ${count} expected`, {}, { missing });
  }
  await storeCall(ctx, "completeMultipart", () => ctx.store.completeMultipart(key, uploadId, parts));
}

/** DELETE /uploads/:id: aborts the upload and releases its reservation. */
export async function abortUpload({ ctx, user, input }: VerbArgs<StorageContext, { id: string }>): Promise<void> {
  const row = await openUpload(ctx, user.userId, input.id);
  if (row.status !== "uploading") throw conflict("upload_completing", "this upload is being completed");
  await discardUpload(ctx, row);
}

/** Removes an unfinished upload from the store, then its row and reservation. */
export async function discardUpload(ctx: StorageContext, row: ObjectRow): Promise<void> {
  const key = objectKey(row.userId, row.id);
  if (row.mode === "multipart" && row.uploadId) {
    // Best effort: parts an abort failed to remove are the bucket's lifecycle rule's to clear
    // (AbortIncompleteMultipartUpload, docs/operations.md); the user's quota is released regardless.
    await ctx.store
      .abortMultipart(key, row.uploadId)
      .catch((error) => ctx.logger.warn({ err: error, object_id: row.id }, "multipart abort failed"));
  }
  // A single PUT may have landed meanwhile: the object goes too.
  await storeCall(ctx, "delete", () => ctx.store.delete(key));
  await forget(ctx, row.userId, row.id);
}

/** Deletes the object's row and gives its reservation back, once: the delete claims the row. */
export async function forget(ctx: StorageContext, userId: string, id: string): Promise<boolean> {
  return ctx.db.transaction(async (tx) => {
    const [gone] = await tx
      .delete(objects)
      .where(and(eq(objects.id, id), eq(objects.userId, userId)))
      .returning({ size: objects.size });
    if (gone) await release(tx, userId, gone.size);
    return gone !== undefined;
  });
}
