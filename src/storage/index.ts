import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import { openDocumentSearchQueue } from "../shared/document-search";
import { createLlm, type Llm } from "../shared/llm";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import { rateLimiterFor } from "../shared/rate-limit";
import type { UserDataConsumers } from "../shared/user-data";
import type { StorageContext } from "./context";
import { type DocumentIndex, PgDocumentIndex, QdrantDocumentIndex } from "./document-index";
import { LocalObjectStore } from "./local-store";
import { migrations } from "./migrations";
import type { ObjectStore } from "./object-store";
import { LOCAL_PATH, localRoutes, STORAGE_PREFIX, storageRoutes } from "./routes";
import { S3ObjectStore } from "./s3-store";
import { startSearchRelay } from "./search-relay";
import { Semaphore } from "./semaphore";
import { Sweeper } from "./sweep";
import { startStorageUserData } from "./user-data";

export { STORAGE_PREFIX } from "./routes";

/** The storage service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof storageRoutes>;

/** Multipart part size on S3 (S3's minimum is 5 MiB); files up to it go up in one PUT. */
export const S3_PART_SIZE = 8 * 1024 * 1024;

export interface StorageOptions {
  /** Tests: another object store, embedding model or index. */
  store?: ObjectStore;
  llm?: Llm;
  documents?: DocumentIndex;
}

/** S3 when S3_ENDPOINT is set, else the local directory DATA_DIR/storage (embedded mode). */
export function objectStoreFor(platform: Platform): ObjectStore {
  const { env } = platform;
  if (env.S3_ENDPOINT && env.S3_BUCKET && env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY) {
    return new S3ObjectStore({
      endpoint: env.S3_ENDPOINT,
      bucket: env.S3_BUCKET,
      region: env.S3_REGION,
      accessKeyId: env.S3_ACCESS_KEY_ID,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY,
      partSize: S3_PART_SIZE,
    });
  }
  // The service receives local parts itself, so they stay within its request body limit.
  return new LocalObjectStore(`${env.DATA_DIR}/storage`, Math.min(S3_PART_SIZE, env.MAX_BODY_BYTES), LOCAL_PATH);
}

/** Builds the storage service from its dependencies; no globals. */
export async function createStorageService(platform: Platform, options: StorageOptions = {}): Promise<ServiceModule> {
  const { env } = platform;
  const logger = platform.logger.child({ module: "storage" });
  const store = options.store ?? objectStoreFor(platform);
  const documents =
    options.documents ??
    (env.QDRANT_URL
      ? new QdrantDocumentIndex({
          url: env.QDRANT_URL,
          apiKey: env.QDRANT_API_KEY,
          collection: env.QDRANT_DOCUMENTS_COLLECTION,
        })
      : new PgDocumentIndex(platform.db));
  const ctx: StorageContext = {
    platform,
    db: platform.db,
    logger,
    limiter: rateLimiterFor(platform),
    config: { urlTtlS: env.STORAGE_URL_TTL_S, uploadTtlS: env.STORAGE_UPLOAD_TTL_S },
    store,
    verifications: new Semaphore(env.STORAGE_VERIFY_CONCURRENCY),
    llm: options.llm ?? createLlm(env, logger),
    documents,
    completions: platform.metrics.counter("storage_upload_completions_total", "Completed uploads by outcome", [
      "outcome",
    ]),
  };
  const sweeper = new Sweeper(ctx, env.STORAGE_SWEEP_INTERVAL_MS);
  const searches = openDocumentSearchQueue(platform);
  let userData: UserDataConsumers | undefined;
  return {
    name: "storage",
    prefix: STORAGE_PREFIX,
    // The API, and beside it (embedded mode only) the local store's signed URLs.
    plugin: new Elysia({ name: "storage-service" }).use(storageRoutes(ctx)).use(localRoutes(store)),
    async start() {
      await migrateService(platform, "storage", migrations);
      if (store.kind === "local")
        logger.warn(`no S3_ENDPOINT configured: objects are stored under ${env.DATA_DIR}/storage`);
      sweeper.start();
      // The chat agent's documents_search, asked over the queue (src/shared/document-search.ts).
      startSearchRelay(ctx, searches);
      // Account deletions (objects, backups and vectors erased) and data exports.
      userData = await startStorageUserData(ctx);
    },
    async stop() {
      await userData?.stop();
      await sweeper.stop();
      await searches.close();
    },
  };
}
