import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import { rateLimiterFor } from "../shared/rate-limit";
import type { UserDataConsumers } from "../shared/user-data";
import { billingConfig } from "./config";
import type { BillingContext } from "./context";
import { migrations } from "./migrations";
import { OutboxRelay } from "./outbox";
import { billingPages } from "./pages";
import { BILLING_PREFIX, billingRoutes } from "./routes";
import { startBillingUserData } from "./user-data";

export { BILLING_PREFIX } from "./routes";

/** The billing service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof billingRoutes>;

/** Builds the billing service from its dependencies; no globals. */
export async function createBillingService(platform: Platform): Promise<ServiceModule> {
  const logger = platform.logger.child({ module: "billing" });
  const config = billingConfig(platform.env);
  const relay = new OutboxRelay(platform, logger);
  const ctx: BillingContext = {
    platform,
    db: platform.db,
    logger,
    config,
    limiter: rateLimiterFor(platform),
    notifyOutbox: () => relay.notify(),
  };
  let userData: UserDataConsumers | undefined;
  return {
    name: "billing",
    prefix: BILLING_PREFIX,
    // The API, and beside it the pages Stripe sends the browser back to (docs/pages.md).
    plugin: new Elysia({ name: "billing-service" }).use(billingRoutes(ctx)).use(billingPages(ctx)),
    async start() {
      await migrateService(platform, "billing", migrations);
      if (!config.stripe || !config.webhookSecret) {
        logger.warn("STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET unset: checkout and webhooks answer 503");
      }
      relay.start();
      // Account deletions (Stripe cancellation and customer deletion) and data exports.
      userData = await startBillingUserData(ctx);
    },
    async stop() {
      await userData?.stop();
      await relay.stop();
    },
  };
}
