import type { Counter } from "prom-client";
import type { Database } from "../shared/db";
import type { Logger } from "../shared/logger";
import type { HostResolver } from "../shared/network-address";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { PluginPaymentsConfig } from "./payments";

export interface PluginsConfig {
  /** PLUGINS_ADMIN_USER_IDS: who may review, suspend and moderate. */
  admins: ReadonlySet<string>;
  /** Outside production a remote plugin's endpoint may be plain http (test servers). */
  allowHttpEndpoints: boolean;
  /**
   * Production (NODE_ENV=production, as the chat service decides): a published endpoint or package
   * must not lead into a network, by its literal host or by what its name resolves to.
   */
  strictEndpoints: boolean;
  /** How a published host name is resolved (A and AAAA); the system's resolver but in tests. */
  resolveHost: HostResolver;
  /** Per user and plugin, when the manifest sets none (PLUGIN_CALLS_PER_MINUTE, PLUGIN_CALL_TIMEOUT_MS). */
  callsPerMinute: number;
  callTimeoutMs: number;
  /**
   * `scheme://host` pairs a client may send the browser back to from Stripe (Checkout, Connect
   * onboarding): PUBLIC_URL's, billing's configured pages' and BILLING_REDIRECT_ORIGINS, as billing.
   */
  redirectOrigins: ReadonlySet<string>;
}

/** What the plugins service's routes and verbs need; built once by the service factory. */
export interface PluginsContext {
  platform: Platform;
  db: Database;
  logger: Logger;
  limiter: RateLimiter;
  config: PluginsConfig;
  /** Paid plugins: the Stripe client, the webhook secrets, the platform's fee. */
  payments: PluginPaymentsConfig;
  /** Installs, uninstalls and upgrades (`action`: installed, uninstalled, upgraded, auto_upgraded). */
  installChanges: Counter<"action">;
  /** Versions by what happened to them: `created`, `submitted`, `published`, `rejected`. */
  versionEvents: Counter<"event">;
  /** The chat service's lookups of a user's plugin tools: `answered`, `failed`, `expired`. */
  lookups: Counter<"outcome">;
  /**
   * Purchases by what happened: `paid`, `refunded`, `ended`, `resumed`, `renewed` (a subscription's
   * month paid), `refused` (did not match the price).
   */
  purchaseEvents: Counter<"event">;
}

/** A transaction handle, as drizzle passes it to `db.transaction`'s callback. */
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];
