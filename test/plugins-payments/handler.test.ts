// Strategy: the idempotency contract of PaymentOutcomeHandler on the real PostgreSQL. A store shaped as
// the contract asks (event id recorded first, in the effect's transaction, ON CONFLICT DO NOTHING)
// runs behind handlePaymentWebhook; the same delivery is made again and many times at once, and a
// failing store is retried, the way Stripe redelivers. The effect is a counter, so applying twice shows.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, eq, sql } from "drizzle-orm";
import { boolean, integer, pgSchema, primaryKey, text } from "drizzle-orm/pg-core";
import {
  type AppliedOutcome,
  type ApplyResult,
  handlePaymentWebhook,
  type PaymentOutcomeHandler,
} from "../../src/plugins/payments";
import type { Logger } from "../../src/shared/logger";
import type { Platform } from "../../src/shared/platform";
import { captureLogger, createTestContext, type TestContext } from "../../src/shared/testing";
import { MONTHLY, ONE_OFF, type PaymentsHarness, startPayments } from "./harness";

const store = pgSchema("payments_contract");
const processedEvents = store.table("processed_events", { eventId: text("event_id").primaryKey() });
const entitlements = store.table(
  "entitlements",
  {
    userId: text("user_id").notNull(),
    pluginId: text("plugin_id").notNull(),
    paymentIntentId: text("payment_intent_id"),
    subscriptionId: text("subscription_id"),
    active: boolean("active").notNull(),
    /** How often a purchase was applied: more than 1 means an event was applied twice. */
    grants: integer("grants").notNull(),
  },
  (table) => [primaryKey({ columns: [table.userId, table.pluginId] })],
);

/** The contract, as the plugins service's store is to implement it against its own tables. */
class ContractStore implements PaymentOutcomeHandler {
  calls = 0;
  /** Fails the next `failures` applications after recording the event, as a crash mid-transaction would. */
  failures = 0;

  constructor(private readonly platform: Platform) {}

  async apply(outcome: AppliedOutcome): Promise<ApplyResult> {
    this.calls += 1;
    return this.platform.db.transaction(async (tx) => {
      const fresh = await tx
        .insert(processedEvents)
        .values({ eventId: outcome.eventId })
        .onConflictDoNothing()
        .returning({ id: processedEvents.eventId });
      if (fresh.length === 0) return "duplicate";
      if (this.failures > 0) {
        this.failures -= 1;
        throw new Error("store failed");
      }
      if (outcome.kind === "purchase_paid") {
        await tx
          .insert(entitlements)
          .values({
            userId: outcome.userId,
            pluginId: outcome.pluginId,
            paymentIntentId: outcome.paymentIntentId,
            subscriptionId: outcome.subscriptionId,
            active: true,
            grants: 1,
          })
          .onConflictDoUpdate({
            target: [entitlements.userId, entitlements.pluginId],
            set: { active: true, grants: sql`${entitlements.grants} + 1` },
          });
      } else if (outcome.kind === "purchase_refunded" && outcome.fullyRefunded) {
        await tx
          .update(entitlements)
          .set({ active: false })
          .where(eq(entitlements.paymentIntentId, outcome.paymentIntentId));
      } else if (outcome.kind === "subscription_ended") {
        await tx
          .update(entitlements)
          .set({ active: false })
          .where(eq(entitlements.subscriptionId, outcome.subscriptionId));
      }
      return "processed";
    });
  }

  async entitlement(userId: string, pluginId: string) {
    const [row] = await this.platform.db
      .select({ active: entitlements.active, grants: entitlements.grants })
      .from(entitlements)
      .where(and(eq(entitlements.userId, userId), eq(entitlements.pluginId, pluginId)));
    return row;
  }

  async recorded(eventId: string) {
    const rows = await this.platform.db.select().from(processedEvents).where(eq(processedEvents.eventId, eventId));
    return rows.length === 1;
  }
}

let ctx: TestContext;
let h: PaymentsHarness;
let platform: Platform;
let contract: ContractStore;
let logged: { logger: Logger; lines: Array<Record<string, unknown>> };

beforeAll(async () => {
  ctx = await createTestContext();
  logged = captureLogger();
  h = startPayments({ logger: logged.logger });
  ctx.defer(() => h.stop());
  platform = await ctx.platform({ service: "plugins" });
  await platform.db.execute(sql.raw(`create schema payments_contract`));
  await platform.db.execute(sql.raw(`create table payments_contract.processed_events (event_id text primary key)`));
  await platform.db.execute(
    sql.raw(`create table payments_contract.entitlements (
      user_id text not null, plugin_id text not null, payment_intent_id text, subscription_id text,
      active boolean not null, grants integer not null, primary key (user_id, plugin_id))`),
  );
  contract = new ContractStore(platform);
});
afterAll(() => ctx.close());

const webhook = async (payload: string) =>
  handlePaymentWebhook(
    { config: h.config, logger: logged.logger, metrics: h.metrics, handler: contract },
    { payload, signature: await h.sign(payload) },
  );

async function paidOnce() {
  const { accountId } = await h.publisher();
  const input = h.checkoutInput(accountId, ONE_OFF);
  const { checkout } = await h.sessionOf(input);
  return { input, ...h.fake.completePayment(checkout.sessionId) };
}

describe("handlePaymentWebhook with a store keeping the contract", () => {
  test("a purchase is applied once; its replay is acknowledged as a duplicate", async () => {
    const { input, event } = await paidOnce();
    expect(await webhook(event)).toEqual({ received: true, outcome: "processed" });
    expect(await webhook(event)).toEqual({ received: true, outcome: "duplicate" });
    expect(await contract.entitlement(input.userId, input.pluginId)).toEqual({ active: true, grants: 1 });
  });

  test("the same event delivered eight times at once is applied once", async () => {
    const { input, event } = await paidOnce();
    const outcomes = (await Promise.all(Array.from({ length: 8 }, () => webhook(event)))).map((r) => r.outcome);
    expect(outcomes.sort()).toEqual([
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "duplicate",
      "processed",
    ]);
    expect(await contract.entitlement(input.userId, input.pluginId)).toEqual({ active: true, grants: 1 });
  });

  test("a store failure records nothing, so Stripe's redelivery applies the event", async () => {
    const { input, event } = await paidOnce();
    contract.failures = 1;
    await expect(webhook(event)).rejects.toThrow("store failed");
    expect(await contract.recorded(JSON.parse(event).id)).toBe(false);
    expect(await contract.entitlement(input.userId, input.pluginId)).toBeUndefined();
    expect(await webhook(event)).toEqual({ received: true, outcome: "processed" });
    expect(await contract.entitlement(input.userId, input.pluginId)).toEqual({ active: true, grants: 1 });
  });

  test("a refund and a subscription's end withdraw what their purchases granted", async () => {
    const once = await paidOnce();
    await webhook(once.event);
    await h.deps.config.stripe?.refunds.create({ payment_intent: once.paymentIntent.id });
    await webhook(h.fake.emittedOf("charge.refunded").at(-1) as string);
    expect(await contract.entitlement(once.input.userId, once.input.pluginId)).toEqual({ active: false, grants: 1 });

    const { accountId } = await h.publisher();
    const monthly = h.checkoutInput(accountId, MONTHLY);
    const { checkout } = await h.sessionOf(monthly);
    const { event, subscription } = h.fake.completeCheckout(checkout.sessionId);
    await webhook(event);
    expect(await contract.entitlement(monthly.userId, monthly.pluginId)).toEqual({ active: true, grants: 1 });
    await h.deps.config.stripe?.subscriptions.cancel(subscription.id);
    expect(await webhook(h.fake.emittedOf("customer.subscription.deleted").at(-1) as string)).toMatchObject({
      outcome: "processed",
    });
    expect(await contract.entitlement(monthly.userId, monthly.pluginId)).toEqual({ active: false, grants: 1 });
  });

  test("events of nothing ours never reach the store; malformed ones are logged", async () => {
    const callsBefore = contract.calls;
    const unrelated = h.fake.event("customer.created", { id: "cus_1", object: "customer" });
    expect(await webhook(unrelated)).toEqual({ received: true, outcome: "ignored" });
    const broken = h.fake.event("customer.subscription.deleted", {
      id: "sub_broken",
      object: "subscription",
      status: "canceled",
      metadata: { kind: "plugin_purchase" },
    });
    expect(await webhook(broken)).toEqual({ received: true, outcome: "ignored" });
    expect(contract.calls).toBe(callsBefore);
    expect(logged.lines).toContainEqual(
      expect.objectContaining({
        msg: "plugin payment event with malformed metadata",
        event: JSON.parse(broken).id,
        type: "customer.subscription.deleted",
      }),
    );
  });

  test("a bad signature is refused before the store sees anything", async () => {
    const { event } = await paidOnce();
    const callsBefore = contract.calls;
    const forged = handlePaymentWebhook(
      { config: h.config, logger: logged.logger, metrics: h.metrics, handler: contract },
      { payload: event, signature: await h.sign(event, "whsec_forger") },
    );
    await expect(forged).rejects.toMatchObject({ status: 400, code: "invalid_signature" });
    expect(contract.calls).toBe(callsBefore);
  });

  test("every delivery is counted by type and outcome", async () => {
    const text = await h.metrics.registry.getSingleMetricAsString("plugins_payment_webhook_events_total");
    expect(text).toContain(
      'plugins_payment_webhook_events_total{type="checkout.session.completed",outcome="processed"}',
    );
    expect(text).toContain(
      'plugins_payment_webhook_events_total{type="checkout.session.completed",outcome="duplicate"}',
    );
    expect(text).toContain('plugins_payment_webhook_events_total{type="unhandled",outcome="ignored"}');
  });
});
