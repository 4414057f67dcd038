// Shared setup for billing tests: the real service on a real PostgreSQL and Redis, the real Stripe
// SDK pointed at an in-memory fake Stripe API, and webhooks signed with the SDK's test helper.

import { count } from "drizzle-orm";
import { Redis } from "ioredis";
import { createBillingService } from "../../src/billing";
import { outbox } from "../../src/billing/tables";
import { TierChangedEvent } from "../../src/shared/events/tier-changed";
import { createTestContext, eventually, type PlatformOverrides, type TestContext } from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import type { Tier } from "../../src/shared/tiers";

export const WEBHOOK_SECRET = "whsec_test_secret";
export const PRICES = { pro: "price_pro_monthly", power: "price_power_monthly", team: "price_team_monthly" } as const;
export const PUBLIC_URL = "https://app.adiuva.test";

/** A fresh user id; every test uses its own users so tests never see each other's state. */
export const newUserId = () => `user-${crypto.randomUUID()}`;

/** Stripe-node adds `stripe-node-retry-*` keys itself; ours are the other ones. */
export const isOwnIdempotencyKey = (key: string | null | undefined) =>
  typeof key === "string" && !key.startsWith("stripe-node-retry-");

/** Billing's settings against a started fake Stripe. */
export const billingEnv = (fake: FakeStripe): Record<string, string> => ({
  PUBLIC_URL,
  STRIPE_SECRET_KEY: fake.apiKey,
  STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
  STRIPE_API_BASE: fake.url,
  STRIPE_MAX_NETWORK_RETRIES: "0",
  STRIPE_PRICE_PRO: PRICES.pro,
  STRIPE_PRICE_POWER: PRICES.power,
  STRIPE_PRICE_TEAM: PRICES.team,
  BILLING_REDIRECT_ORIGINS: "adiuva://billing",
});

export interface Call {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export async function startBilling(overrides: PlatformOverrides = {}) {
  const ctx: TestContext = await createTestContext();
  const fake = new FakeStripe();
  fake.start();
  ctx.defer(() => fake.stop());
  const server = await ctx.start([createBillingService], {
    ...overrides,
    service: "billing",
    env: { ...billingEnv(fake), ...overrides.env },
  });
  const redis = new Redis(ctx.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  ctx.defer(() => redis.disconnect());
  const streamKey = server.platform.keys.tierChangedStream;

  /** A request to the service: status, parsed JSON body and headers. */
  const send = async (method: string, path: string, options: Call = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] ??= "application/json";
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    }
    const response = await fetch(`${server.url}/api/v1/billing${path}`, { method, headers, body });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
    const json: any = text ? JSON.parse(text) : undefined;
    return { status: response.status, body: json, headers: response.headers };
  };

  /** A request to the service: status and parsed JSON body. */
  const call = async (method: string, path: string, options: Call = {}) => {
    const { status, body } = await send(method, path, options);
    return { status, body };
  };

  /** Posts a webhook signed like Stripe signs it (or with the given header). */
  const webhook = async (payload: string, options: { timestamp?: number; signature?: string | null } = {}) => {
    const signature =
      options.signature === undefined
        ? await signWebhook(payload, WEBHOOK_SECRET, options.timestamp)
        : options.signature;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (signature !== null) headers["stripe-signature"] = signature;
    return call("POST", "/webhook", { body: payload, headers });
  };

  /** Rows the relay has not yet moved to the stream. */
  const pendingOutbox = async () => (await server.platform.db.select({ n: count() }).from(outbox))[0]?.n ?? 0;

  /**
   * Every tier change on the stream, read straight from Redis once the relay has drained the
   * outbox: every change a finished request committed is on the stream by then.
   */
  const streamEvents = async (): Promise<TierChangedEvent[]> => {
    const left = await eventually(pendingOutbox, (n) => n === 0);
    if (left !== 0) throw new Error(`outbox still holds ${left} row(s)`);
    const entries = await redis.xrange(streamKey, "-", "+");
    return entries.map(([, fields]) => TierChangedEvent.parse(JSON.parse(fields[1] ?? "null")));
  };

  /** One user's tier changes on the stream, oldest first. */
  const eventsFor = async (userId: string) => (await streamEvents()).filter((event) => event.userId === userId);

  /** Checkout and payment in Stripe, without the webhook that tells us. */
  const checkoutAndPay = async (userId: string, tier: Exclude<Tier, "free">) => {
    const token = await ctx.token(userId);
    const checkout = await call("POST", "/checkout", { token, body: { tier } });
    if (checkout.status !== 200) throw new Error(`checkout failed: ${JSON.stringify(checkout.body)}`);
    const sessionId = String(checkout.body.url).split("/").pop() ?? "";
    return { token, ...fake.completeCheckout(sessionId) };
  };

  /** Checkout, payment in Stripe, and the `checkout.session.completed` webhook. */
  const subscribe = async (userId: string, tier: Exclude<Tier, "free">) => {
    const paid = await checkoutAndPay(userId, tier);
    const delivered = await webhook(fake.event("checkout.session.completed", paid.session));
    if (delivered.status !== 200) throw new Error(`webhook failed: ${JSON.stringify(delivered.body)}`);
    return paid;
  };

  return {
    ctx,
    fake,
    server,
    platform: server.platform,
    call,
    send,
    webhook,
    pendingOutbox,
    streamEvents,
    eventsFor,
    checkoutAndPay,
    subscribe,
  };
}

export type BillingHarness = Awaited<ReturnType<typeof startBilling>>;
