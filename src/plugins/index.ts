import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import { openPluginToolsQueue } from "../shared/plugin-tools";
import { rateLimiterFor } from "../shared/rate-limit";
import type { UserDataConsumers } from "../shared/user-data";
import type { PluginsContext } from "./context";
import { migrations } from "./migrations";
import { pluginPaymentsConfig } from "./payments";
import { redirectOrigins } from "./redirects";
import { PLUGINS_PREFIX, pluginsRoutes } from "./routes";
import { startToolsRelay } from "./tools-relay";
import { startPluginsUserData } from "./user-data";

export { PLUGINS_PREFIX } from "./routes";

/** The plugins service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof pluginsRoutes>;

/** Builds the plugins service (the marketplace of MCP plugins) from its dependencies; no globals. */
export async function createPluginsService(platform: Platform): Promise<ServiceModule> {
  const { env, metrics } = platform;
  const logger = platform.logger.child({ module: "plugins" });
  const ctx: PluginsContext = {
    platform,
    db: platform.db,
    logger,
    limiter: rateLimiterFor(platform),
    config: {
      admins: new Set(env.PLUGINS_ADMIN_USER_IDS),
      allowHttpEndpoints: env.NODE_ENV !== "production",
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
      "Plugin purchases paid, refunded, ended, resumed",
      ["event"],
    ),
  };
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
      if (!ctx.payments.stripe || ctx.payments.webhookSecrets.length === 0) {
        logger.warn(
          "STRIPE_SECRET_KEY or PLUGINS_STRIPE_WEBHOOK_SECRET unset: paid plugins cannot be bought (checkout and webhooks answer 503)",
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
