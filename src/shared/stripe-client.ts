import Stripe from "stripe";
import type { Env } from "./env";

/**
 * A Stripe client with the deployment's settings (timeouts, network retries, the tests' API host
 * from STRIPE_API_BASE), named after the service that uses it: billing's subscriptions and the
 * plugins service's Connect payments run on the same platform account.
 */
export function createStripeClient(env: Env, secretKey: string, appName: string): Stripe {
  const base = env.STRIPE_API_BASE ? new URL(env.STRIPE_API_BASE) : undefined;
  const protocol = base?.protocol === "http:" ? "http" : "https";
  return new Stripe(secretKey, {
    maxNetworkRetries: env.STRIPE_MAX_NETWORK_RETRIES,
    timeout: env.STRIPE_TIMEOUT_MS,
    telemetry: false,
    appInfo: { name: appName },
    ...(base && { host: base.hostname, port: base.port || (protocol === "http" ? 80 : 443), protocol }),
  });
}
