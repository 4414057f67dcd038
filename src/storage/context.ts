import type { Counter } from "prom-client";
import type { Database } from "../shared/db";
import type { Llm } from "../shared/llm";
import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { DocumentIndex } from "./document-index";
import type { ObjectStore } from "./object-store";
import type { Semaphore } from "./semaphore";

export interface StorageConfig {
  /** Lifetime of presigned URLs, seconds. */
  urlTtlS: number;
  /** Lifetime of an unfinished upload, seconds. */
  uploadTtlS: number;
}

/** What storage's routes and verbs need; built once by the service factory. */
export interface StorageContext {
  platform: Platform;
  db: Database;
  logger: Logger;
  limiter: RateLimiter;
  config: StorageConfig;
  store: ObjectStore;
  /** Bounds the objects this instance streams at once to verify their SHA-256. */
  verifications: Semaphore;
  llm: Llm;
  documents: DocumentIndex;
  /** Completed uploads by outcome: `stored`, `size_mismatch`, `checksum_mismatch`. */
  completions: Counter<"outcome">;
}

/** A transaction handle, as drizzle passes it to `db.transaction`'s callback. */
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];
