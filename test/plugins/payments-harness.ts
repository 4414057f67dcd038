// Shared setup for paid plugins: the plugins service on the real PostgreSQL and Redis with the real
// stripe-node client pointed at the in-memory fake Stripe API (Connect accounts, Checkout with
// application fees, refunds, subscriptions), webhooks signed with the SDK's own helper, and the
// lookup the chat service makes, through the real queue, to see what the agent is offered.
import { createPluginsContext } from "../../src/plugins";
import { type PaymentsDeps, pluginPaymentsConfig } from "../../src/plugins/payments";
import { eraseUser } from "../../src/plugins/user-data";
import { silentLogger } from "../../src/shared/logger";
import { openPluginToolsQueue, type PluginToolsJob, PluginToolsReply } from "../../src/shared/plugin-tools";
import { eventually } from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import type { Tier } from "../../src/shared/tiers";
import { type Answer, type Developer, manifest, newUserId, startPlugins } from "./harness";

export const WEBHOOK_SECRET = "whsec_plugin_purchases";
export const CONNECT_WEBHOOK_SECRET = "whsec_plugin_connect";
/** Not a round share: the fee of 1500 is 187.5, which Stripe's rounding makes 188. */
export const FEE_PERCENT = "12.5";
export const ONE_OFF = { model: "one_off", amount: 1500, currency: "eur" } as const;
export const MONTHLY = { model: "monthly", amount: 499, currency: "eur" } as const;
export const RETURN = { success_url: "https://app.adiuva.test/plugins/bought", cancel_url: "adiuva://plugins" };

export const codeOf = (answer: Answer) => ({ status: answer.status, code: answer.body?.error?.code });

export async function startPaidPlugins() {
  const fake = new FakeStripe();
  fake.start();
  const env = {
    PUBLIC_URL: "https://api.adiuva.test",
    BILLING_REDIRECT_ORIGINS: "https://app.adiuva.test, adiuva://plugins",
    STRIPE_SECRET_KEY: fake.apiKey,
    STRIPE_API_BASE: fake.url,
    STRIPE_MAX_NETWORK_RETRIES: "0",
    PLUGINS_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PLUGINS_STRIPE_CONNECT_WEBHOOK_SECRET: CONNECT_WEBHOOK_SECRET,
    PLUGIN_PLATFORM_FEE_PERCENT: FEE_PERCENT,
  };
  const p = await startPlugins({ env });
  p.ctx.defer(() => fake.stop());
  /** The service's own Stripe settings, for what Stripe's dashboard or support would do. */
  const deps: PaymentsDeps = {
    config: pluginPaymentsConfig(await p.ctx.envFor({ service: "plugins", env })),
    logger: silentLogger(),
  };
  const stripe = deps.config.stripe;
  if (!stripe) throw new Error("no Stripe client");
  /** The service's own context, to run its erasure directly (as its `user_deleted` consumer does). */
  const service = createPluginsContext(p.server.platform);
  const erase = (userId: string) => eraseUser(service, userId);

  // A platform standing in for a chat instance: it asks for a user's plugins as a chat turn does.
  const chat = await p.ctx.platform({ service: "chat" });
  const queue = openPluginToolsQueue(chat);
  p.ctx.defer(() => queue.close());
  const replies = new Map<string, PluginToolsReply>();
  p.ctx.defer(
    await chat.bus.subscribe(chat.keys.pluginToolsReplies(chat.instanceId), (message) => {
      const reply = PluginToolsReply.parse(JSON.parse(message));
      replies.set(reply.requestId, reply);
    }),
  );

  /** The plugin ids the chat lookup offers the user's agent now (a team user, as the buyers here are). */
  const offered = async (userId: string, tier: Tier = "team"): Promise<string[]> => {
    const requestId = crypto.randomUUID();
    const job: PluginToolsJob = { userId, tier, replyTo: chat.instanceId, requestId, expiresAt: Date.now() + 10_000 };
    await queue.add(requestId, job);
    const reply = await eventually(
      async () => replies.get(requestId),
      (value) => value !== undefined,
      10_000,
      10,
    );
    if (!reply || reply.error !== undefined) throw new Error(`lookup: ${JSON.stringify(reply)}`);
    return [...(reply.plugins ?? []), ...(reply.local ?? [])].map((each) => each.pluginId);
  };

  /** Delivers an event to the webhook as Stripe does: the exact bytes, signed with `secret`. */
  const deliver = async (payload: string, secret = WEBHOOK_SECRET) =>
    p.call("POST", "/payments/webhook", {
      body: payload,
      headers: { "stripe-signature": await signWebhook(payload, secret) },
    });

  /** A developer whose Stripe account is made and onboarded, and Stripe's `account.updated` delivered. */
  const payablePublisher = async (): Promise<Developer & { accountId: string }> => {
    const dev = await p.developer();
    const created = await p.call("POST", "/developers/me/payment-account", { token: dev.token, body: {} });
    if (created.status !== 201) throw new Error(`payment account: ${created.status} ${JSON.stringify(created.body)}`);
    const accountId = created.body.account_id as string;
    const { event } = fake.completeOnboarding(accountId);
    const delivered = await deliver(event, CONNECT_WEBHOOK_SECRET);
    if (delivered.body?.outcome !== "processed") throw new Error(`account.updated: ${JSON.stringify(delivered.body)}`);
    return { ...dev, accountId };
  };

  /** A live paid plugin of `dev`. */
  const paidPlugin = (dev: Developer, pricing: Record<string, unknown>, options: Parameters<typeof manifest>[0] = {}) =>
    p.publishLive(dev, manifest({ pricing, ...options }));

  const checkout = (token: string | undefined, pluginId: string, body: Record<string, unknown> = {}) =>
    p.call("POST", "/checkout", {
      token,
      body: { plugin_id: pluginId, grants: p.allGrants, ...RETURN, ...body },
    });

  /** A user who bought `pluginId` (a one-off) and whose payment's event was made; not delivered yet. */
  const paidCheckout = async (pluginId: string, grants: unknown = p.allGrants) => {
    const userId = newUserId();
    const token = await p.token(userId, "team");
    const started = await checkout(token, pluginId, { grants });
    if (started.status !== 200) throw new Error(`checkout: ${started.status} ${JSON.stringify(started.body)}`);
    const sessionId = started.body.session_id as string;
    const paid = fake.completePayment(sessionId);
    return { userId, token, sessionId, ...paid };
  };

  /** A user subscribed to `pluginId` (monthly), the completion's event made; not delivered yet. */
  const subscribedCheckout = async (pluginId: string) => {
    const userId = newUserId();
    const token = await p.token(userId, "team");
    const started = await checkout(token, pluginId);
    if (started.status !== 200) throw new Error(`checkout: ${started.status} ${JSON.stringify(started.body)}`);
    const sessionId = started.body.session_id as string;
    const done = fake.completeCheckout(sessionId);
    return { userId, token, sessionId, ...done };
  };

  /** The newest event of a type the fake emitted (after a change it made itself). */
  const lastEmitted = (type: string) => {
    const payload = fake.emittedOf(type).at(-1);
    if (!payload) throw new Error(`no ${type} emitted`);
    return payload;
  };

  return {
    ...p,
    fake,
    deps,
    stripe,
    service,
    erase,
    offered,
    deliver,
    payablePublisher,
    paidPlugin,
    checkout,
    paidCheckout,
    subscribedCheckout,
    lastEmitted,
  };
}

export type PaidPlugins = Awaited<ReturnType<typeof startPaidPlugins>>;
