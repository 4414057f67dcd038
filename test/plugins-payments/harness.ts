// Shared setup for plugin payments: the real Stripe SDK pointed at the in-memory fake Stripe API
// (with its Connect side), configuration parsed by loadEnv as a deployment's, and webhooks signed with
// the SDK's own test helper.

import {
  createPluginCheckout,
  createPublisherAccount,
  type PaidPricing,
  type PaymentsDeps,
  type PluginCheckoutInput,
  pluginPaymentsConfig,
} from "../../src/plugins/payments";
import { loadEnv } from "../../src/shared/env";
import { type Logger, silentLogger } from "../../src/shared/logger";
import { Metrics } from "../../src/shared/metrics";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";

export const WEBHOOK_SECRET = "whsec_plugins_purchases";
export const CONNECT_WEBHOOK_SECRET = "whsec_plugins_connect";
export const ONE_OFF: PaidPricing = { model: "one_off", amount: 1500, currency: "eur" };
export const MONTHLY: PaidPricing = { model: "monthly", amount: 499, currency: "eur" };

export const newUserId = () => `user-${crypto.randomUUID()}`;

/** Stripe-node adds `stripe-node-retry-*` keys itself; ours are the other ones. */
export const isOwnIdempotencyKey = (key: string | null | undefined) =>
  typeof key === "string" && !key.startsWith("stripe-node-retry-");

export function paymentsEnv(fake: FakeStripe, extra: Record<string, string> = {}) {
  return loadEnv({
    SERVICE_NAME: "plugins",
    NODE_ENV: "test",
    STRIPE_SECRET_KEY: fake.apiKey,
    STRIPE_API_BASE: fake.url,
    STRIPE_MAX_NETWORK_RETRIES: "0",
    PLUGINS_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PLUGINS_STRIPE_CONNECT_WEBHOOK_SECRET: CONNECT_WEBHOOK_SECRET,
    ...extra,
  });
}

export function startPayments(options: { env?: Record<string, string>; logger?: Logger } = {}) {
  const fake = new FakeStripe();
  fake.start();
  const config = pluginPaymentsConfig(paymentsEnv(fake, options.env));
  const deps: PaymentsDeps = { config, logger: options.logger ?? silentLogger() };
  const metrics = new Metrics();

  /** A publisher with an Express account; onboarded (Stripe lets it be paid) unless told otherwise. */
  const publisher = async (onboarding: "done" | "none" | "unverified" = "done") => {
    const publisherId = crypto.randomUUID();
    const account = await createPublisherAccount(deps, { publisherId, email: `${publisherId}@dev.example` });
    if (onboarding !== "none") fake.completeOnboarding(account.accountId, { verified: onboarding === "done" });
    return { publisherId, accountId: account.accountId };
  };

  /** A checkout of a fresh user for a plugin of `accountId`'s publisher. */
  const checkoutInput = (accountId: string, pricing: PaidPricing, extra: Partial<PluginCheckoutInput> = {}) => ({
    userId: newUserId(),
    pluginId: crypto.randomUUID(),
    version: "1.2.0",
    pluginName: "Weather",
    pricing,
    publisherAccountId: accountId,
    successUrl: "https://app.adiuva.test/plugins/bought",
    cancelUrl: "https://app.adiuva.test/plugins",
    ...extra,
  });

  /** The session a checkout created, as the fake holds it. */
  const sessionOf = async (input: PluginCheckoutInput) => {
    const checkout = await createPluginCheckout(deps, input);
    return { checkout, session: fake.sessions.get(checkout.sessionId) };
  };

  const sign = (payload: string, secret = WEBHOOK_SECRET, timestamp?: number) =>
    signWebhook(payload, secret, timestamp);

  return { fake, config, deps, metrics, publisher, checkoutInput, sessionOf, sign, stop: () => fake.stop() };
}

export type PaymentsHarness = ReturnType<typeof startPayments>;
