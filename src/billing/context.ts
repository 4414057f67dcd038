import type { Database } from "../shared/db";
import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { BillingConfig } from "./config";

/** What billing's routes and verbs need; built once by the service factory. */
export interface BillingContext {
  platform: Platform;
  db: Database;
  logger: Logger;
  config: BillingConfig;
  limiter: RateLimiter;
  /** Wakes the outbox relay after a commit that wrote to the outbox. */
  notifyOutbox(): void;
}

/** A transaction handle, as drizzle passes it to `db.transaction`'s callback. */
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];
