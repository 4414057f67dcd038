import type { AuthUser } from "../shared/auth/verifier";
import type { Database } from "../shared/db";
import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import type { BillingConfig } from "./config";

/** What billing's verbs need; built once by the service factory. */
export interface BillingContext {
  platform: Platform;
  db: Database;
  logger: Logger;
  config: BillingConfig;
  /** Wakes the outbox relay after a commit that wrote to the outbox. */
  notifyOutbox(): void;
}

/** A verb's context for a request made by a signed-in user. */
export interface UserContext extends BillingContext {
  user: AuthUser;
}

/** A transaction handle, as drizzle passes it to `db.transaction`'s callback. */
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];
