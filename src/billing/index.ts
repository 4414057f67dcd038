import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { Platform } from "../shared/platform";

export const BILLING_PREFIX = "/api/v1/billing";

/** Builds the billing service from its dependencies; no globals. */
export async function createBillingService(platform: Platform): Promise<ServiceModule> {
  void platform;
  return {
    name: "billing",
    prefix: BILLING_PREFIX,
    plugin: new Elysia({ name: "billing", prefix: BILLING_PREFIX }),
  };
}
