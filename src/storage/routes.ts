import { Elysia } from "elysia";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { createBackup, listBackups } from "./backups";
import type { StorageContext } from "./context";
import { indexObject, searchDocuments } from "./documents";
import { LocalObjectStore } from "./local-store";
import {
  BackupListQuery,
  CompleteInput,
  CreateBackupInput,
  CreateUploadInput,
  DownloadQuery,
  DownloadUrl,
  IndexResult,
  ListQuery,
  ObjectList,
  PartUrls,
  PartUrlsInput,
  SearchInput,
  SearchResult,
  StoredObject,
  Upload,
  UploadParams,
  UploadStatus,
} from "./model";
import { deleteObject, downloadObject, getObject, listObjects } from "./objects";
import { abortUpload, completeUpload, createUpload, getUpload, requestParts } from "./uploads";

/** Where Traefik sends the storage service's traffic; literal, so typed clients know every path. */
export const STORAGE_PREFIX = "/api/v1/storage" as const;

/**
 * Where the embedded mode's signed URLs point (`/storage/local/<token>`): outside the API prefix, as
 * a bucket's URLs are, so the API's contract (every route JSON, documented, bearer or listed public)
 * does not cover them. Embedded mode is development's: production stores in S3 (S3_* required).
 */
export const LOCAL_PATH = "/storage/local";

/** Small JSON bodies only: the largest is a completion listing 10,000 parts with their ETags. */
const MAX_STORAGE_BODY_BYTES = 1024 * 1024;

/** The origin the client reached the service on: the local store's URLs point back at it. */
const originOf = (request: Request) => new URL(request.url).origin;

export function storageRoutes(ctx: StorageContext) {
  const { platform, limiter } = ctx;
  return new Elysia({ name: "storage", prefix: STORAGE_PREFIX, tags: ["storage"] })
    .use(
      protectedRoutes({
        platform,
        service: "storage",
        logger: ctx.logger,
        limiter,
        maxBodyBytes: MAX_STORAGE_BODY_BYTES,
      }),
    )
    .post(
      "/uploads",
      async ({ user, body, request, set }) => {
        const upload = await createUpload({ ctx, user, input: body, origin: originOf(request) });
        set.status = 201;
        return upload;
      },
      {
        body: CreateUploadInput,
        // 409: the quota is used up; 413: larger than the tier's largest object; 502: the store failed.
        response: responses({ 201: Upload }, ...SIGNED_IN, ...JSON_BODY, 409, 502),
        detail: { summary: "Start an upload: one presigned PUT, or a multipart upload for large files" },
      },
    )
    .get("/uploads/:id", ({ user, params }) => getUpload({ ctx, user, input: params }), {
      params: UploadParams,
      response: responses({ 200: UploadStatus }, ...SIGNED_IN, 404, 422, 502),
      detail: { summary: "An upload in progress and the parts the store has (to resume it)" },
    })
    .post(
      "/uploads/:id/parts",
      ({ user, params, body, request }) =>
        requestParts({ ctx, user, input: { ...body, id: params.id }, origin: originOf(request) }),
      {
        params: UploadParams,
        body: PartUrlsInput,
        response: responses({ 200: PartUrls }, ...SIGNED_IN, ...JSON_BODY, 404, 409, 502),
        detail: { summary: "Presigned PUT URLs for parts of a multipart upload" },
      },
    )
    .post(
      "/uploads/:id/complete",
      ({ user, params, body }) => completeUpload({ ctx, user, input: { ...(body ?? {}), id: params.id } }),
      {
        params: UploadParams,
        body: CompleteInput.optional(),
        // 422 `size_mismatch` / `checksum_mismatch`: the object was deleted; 409: parts missing or completing.
        response: responses({ 200: StoredObject }, ...SIGNED_IN, ...JSON_BODY, 404, 409, 502),
        detail: { summary: "Finish an upload: the stored size and SHA-256 must be the declared ones" },
      },
    )
    .delete(
      "/uploads/:id",
      async ({ user, params, set }) => {
        await abortUpload({ ctx, user, input: params });
        set.status = 204;
      },
      {
        params: UploadParams,
        response: responses({ 204: NoContent }, ...SIGNED_IN, 404, 409, 422, 502),
        detail: { summary: "Abort an upload and release its quota" },
      },
    )
    .get("/objects", ({ user, query }) => listObjects({ ctx, user, input: query }), {
      query: ListQuery,
      response: responses({ 200: ObjectList }, ...SIGNED_IN, 422),
      detail: { summary: "The caller's files, newest first (`next_cursor` for the next page)" },
    })
    .get("/objects/:id", ({ user, params }) => getObject({ ctx, user, input: params }), {
      params: UploadParams,
      response: responses({ 200: StoredObject }, ...SIGNED_IN, 404, 422),
      detail: { summary: "One stored file or backup" },
    })
    .get(
      "/objects/:id/download",
      async ({ user, params, query, request, set }) => {
        const download = await downloadObject({ ctx, user, input: params, origin: originOf(request) });
        if (query.redirect === "true") {
          set.status = 302;
          set.headers.location = download.url;
        }
        return download;
      },
      {
        params: UploadParams,
        query: DownloadQuery,
        response: responses({ 200: DownloadUrl, 302: DownloadUrl }, ...SIGNED_IN, 404, 422, 502),
        detail: { summary: "A short-lived download URL: 302 to it, or `?redirect=false` for JSON" },
      },
    )
    .delete(
      "/objects/:id",
      async ({ user, params, set }) => {
        await deleteObject({ ctx, user, input: params });
        set.status = 204;
      },
      {
        params: UploadParams,
        response: responses({ 204: NoContent }, ...SIGNED_IN, 404, 422, 502),
        detail: { summary: "Delete a file or backup (and a document's search index)" },
      },
    )
    .post("/objects/:id/index", ({ user, params }) => indexObject({ ctx, user, input: params }), {
      params: UploadParams,
      // 400: a body that does not parse (the route takes none).
      response: responses({ 200: IndexResult }, ...SIGNED_IN, 400, 404, 413, 422, 502),
      detail: { summary: "Index a text document for search: chunked, embedded, stored per user" },
    })
    .post("/search", ({ user, body }) => searchDocuments({ ctx, user, input: body }), {
      body: SearchInput,
      response: responses({ 200: SearchResult }, ...SIGNED_IN, ...JSON_BODY, 502),
      detail: { summary: "The caller's indexed document chunks closest to a query" },
    })
    .post(
      "/backups",
      async ({ user, body, request, set }) => {
        const upload = await createBackup({ ctx, user, input: body, origin: originOf(request) });
        set.status = 201;
        return upload;
      },
      {
        body: CreateBackupInput,
        response: responses({ 201: Upload }, ...SIGNED_IN, ...JSON_BODY, 409, 502),
        detail: { summary: "Start uploading an encrypted backup of the app (same flow as a file)" },
      },
    )
    .get("/backups", ({ user, query }) => listBackups({ ctx, user, input: query }), {
      query: BackupListQuery,
      response: responses({ 200: ObjectList }, ...SIGNED_IN, 422),
      detail: { summary: "The caller's backups, newest first; restore one through its download URL" },
    });
}

/**
 * Embedded mode only: the signed URLs the local store hands out, answered by the service instead of
 * by S3; nothing when the objects live in S3. Public (the URL's HMAC is the credential, as a presigned
 * S3 URL's signature is), raw bodies, left out of the OpenAPI document like a bucket's URLs.
 */
export function localRoutes(store: StorageContext["store"]) {
  const app = new Elysia({ name: "storage-local", prefix: LOCAL_PATH });
  if (!(store instanceof LocalObjectStore)) return app;
  return app
    .put(
      "/:token",
      async ({ params, request }) => {
        const etag = await store.acceptPut(params.token, await request.arrayBuffer());
        return new Response(null, { status: 200, headers: { etag } });
      },
      { parse: "none", detail: { hide: true } },
    )
    .get("/:token", ({ params }) => store.serveGet(params.token), { detail: { hide: true } });
}
