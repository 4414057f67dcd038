import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import { migrateService } from "../shared/migrate-service";
import { type HostResolver, systemResolver } from "../shared/network-address";
import type { Platform } from "../shared/platform";
import { openPluginToolsQueue } from "../shared/plugin-tools";
import { rateLimiterFor } from "../shared/rate-limit";
import type { UserDataConsumers } from "../shared/user-data";
import type { PluginsContext } from "./context";
import { migrations } from "./migrations";
import { paidPluginsMissing, pluginPaymentsConfig } from "./payments";
import { redirectOrigins } from "./redirects";
import { PLUGINS_PREFIX, pluginsRoutes } from "./routes";
import { startToolsRelay } from "./tools-relay";
import { startPluginsUserData } from "./user-data";

export { PLUGINS_PREFIX } from "./routes";

/** The plugins service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof pluginsRoutes>;

export interface PluginsServiceOptions {
  /** Checks where published endpoints lead as production does (default: NODE_ENV=production). */
  strictEndpoints?: boolean;
  /** Resolves published host names; the system's resolver by default. */
  resolveHost?: HostResolver;
}

/**
 * The service's context from the platform: what its routes, verbs and consumers use. Built once by
 * the factory (tests build one to call a consumer's work directly, e.g. an erasure racing a payment).
 */
export function createPluginsContext(platform: Platform, options: PluginsServiceOptions = {}): PluginsContext {
  const { env, metrics } = platform;
  const logger = platform.logger.child({ module: "plugins" });
  // One switch, as the chat service's: production connects https only, and nothing inside a network.
  const strictEndpoints = options.strictEndpoints ?? env.NODE_ENV === "production";
  return {
    platform,
    db: platform.db,
    logger,
    limiter: rateLimiterFor(platform),
    config: {
      admins: new Set(env.PLUGINS_ADMIN_USER_IDS),
      allowHttpEndpoints: !strictEndpoints,
      strictEndpoints,
      resolveHost: options.resolveHost ?? systemResolver,
      callsPerMinute: env.PLUGIN_CALLS_PER_MINUTE,
      callTimeoutMs: env.PLUGIN_CALL_TIMEOUT_MS,
      redirectOrigins: redirectOrigins(env),
    },
    payments: pluginPaymentsConfig(env),
    installChanges: metrics.counter("plugins_install_changes_total", "Plugin installs, uninstalls and upgrades", [
      "action",
    ]),
    versionEvents: metrics.counter("plugins_version_events_total", "Plugin versions created, submitted, reviewed", [
      "event",
    ]),
    lookups: metrics.counter("plugins_tool_lookups_total", "Lookups of a user's plugin tools for chat turns", [
      "outcome",
    ]),
    purchaseEvents: metrics.counter(
      "plugins_purchase_events_total",
      "Plugin purchases paid, refunded, ended, resumed, renewed",
      ["event"],
    ),
  };
}

/** Builds the plugins service (the marketplace of MCP plugins) from its dependencies; no globals. */
export async function createPluginsService(
  platform: Platform,
  options: PluginsServiceOptions = {},
): Promise<ServiceModule> {
  const { env } = platform;
  const ctx = createPluginsContext(platform, options);
  const { logger } = ctx;
  const lookups = openPluginToolsQueue(platform);
  let userData: UserDataConsumers | undefined;
  return {
    name: "plugins",
    prefix: PLUGINS_PREFIX,
    plugin: new Elysia({ name: "plugins-service" }).use(pluginsRoutes(ctx)),
    async start() {
      await migrateService(platform, "plugins", migrations);
      if (ctx.config.admins.size === 0) {
        logger.warn("PLUGINS_ADMIN_USER_IDS is empty: no one can review plugins, so none can be published");
      }
      // Not a start failure: free plugins need no Stripe. An operator must still see what cannot be sold.
      const missing = paidPluginsMissing(env);
      if (missing.length > 0) {
        logger.warn(
          { missing },
          `paid plugins cannot be sold: ${missing.join(" and ")} unset, so checkout, publishers' payment accounts and the payment webhook answer 503 plugin_payments_unconfigured; free plugins work`,
        );
      }
      // The chat agent's plugin tools, looked up over the queue (src/shared/plugin-tools.ts).
      startToolsRelay(ctx, lookups);
      // Account deletions (installs, reviews, a developer's plugins erased) and data exports.
      userData = await startPluginsUserData(ctx);
    },
    async stop() {
      await userData?.stop();
      await lookups.close();
    },
  };
}
