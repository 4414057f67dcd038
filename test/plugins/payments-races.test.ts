// Races of paid plugins with real concurrency on the real PostgreSQL: Stripe delivering the same
// event many times at once, a refund meeting the user's own reinstall, a payment meeting the user's
// install attempt, a subscription's end meeting its own completion, a refund meeting its own
// completion, a renewal's events meeting each other, an account's erasure meeting its payment's
// completion, a publisher's erasure meeting a payment's completion for their plugin. Each round is a
// new purchase; the invariants must hold in every round.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { erasedUserKey } from "../../src/plugins/erased-users";
import { refundPluginPurchase } from "../../src/plugins/payments";
import { erasedUsers, installs, pluginRows, purchases, subscriptionRenewals } from "../../src/plugins/tables";
import type { Developer } from "./harness";
import { MONTHLY, ONE_OFF, type PaidPlugins, startPaidPlugins } from "./payments-harness";

let p: PaidPlugins;
let publisher: Developer & { accountId: string };
beforeAll(async () => {
  p = await startPaidPlugins();
  publisher = await p.payablePublisher();
});
afterAll(() => p.ctx.close());

const db = () => p.server.platform.db;
const purchasesOf = (userId: string) => db().select().from(purchases).where(eq(purchases.userId, userId));
const installsOf = (userId: string, pluginId: string) =>
  db()
    .select()
    .from(installs)
    .where(and(eq(installs.userId, userId), eq(installs.pluginId, pluginId)));
const installCount = async (id: string) =>
  (await db().select().from(pluginRows).where(eq(pluginRows.id, id)))[0]?.installCount;

/** Purchases the webhook recorded so far (the service's `plugins_purchase_events_total{event="paid"}`). */
async function paidCount() {
  const text = await p.server.platform.metrics.registry.getSingleMetricAsString("plugins_purchase_events_total");
  return Number(/plugins_purchase_events_total\{event="paid"\} (\d+)/.exec(text)?.[1] ?? 0);
}

/**
 * A payment's completion and its plugin publisher's erasure at the same time: started in either order
 * (by the round's parity), the second 0 to 12 ms after the first, so that across rounds the completion
 * meets the erasure before it starts, while it holds its locks and calls Stripe, and after it commits.
 */
async function completionWithErasure<T>(round: number, complete: () => Promise<T>, erase: () => Promise<void>) {
  const delay = (Math.floor(round / 2) % 5) * 3;
  if (round % 2 === 0) return (await Promise.all([complete(), Bun.sleep(delay).then(erase)]))[0];
  return (await Promise.all([erase(), Bun.sleep(delay).then(complete)]))[1];
}

/** Nothing of the plugin is left, and nothing the buyer could use: no purchase, no install, not offered. */
async function expectNothingLeft(userId: string, pluginId: string) {
  expect(await db().select().from(pluginRows).where(eq(pluginRows.id, pluginId))).toEqual([]);
  expect(await db().select().from(purchases).where(eq(purchases.pluginId, pluginId))).toEqual([]);
  expect(await purchasesOf(userId)).toEqual([]);
  expect(await installsOf(userId, pluginId)).toEqual([]);
  expect(await p.offered(userId)).toEqual([]);
}

describe("races", () => {
  test("the same checkout.session.completed delivered 10 times at once: one purchase, one install; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    for (let round = 0; round < 20; round++) {
      const buyer = await p.paidCheckout(id);
      const answers = await Promise.all(Array.from({ length: 10 }, () => p.deliver(buyer.event)));
      expect(answers.map((answer) => answer.status)).toEqual(Array(10).fill(200));
      const outcomes = answers.map((answer) => answer.body.outcome as string).sort();
      expect(outcomes).toEqual(["duplicate", ...Array(8).fill("duplicate"), "processed"]);
      const bought = await purchasesOf(buyer.userId);
      expect(bought).toHaveLength(1);
      const installed = await installsOf(buyer.userId, id);
      expect(installed).toHaveLength(1);
      expect(installed[0]?.entitlementId).toBe(bought[0]?.id as string);
    }
    expect(await installCount(id)).toBe(20);
    expect(await db().select().from(purchases).where(eq(purchases.pluginId, id))).toHaveLength(20);
  }, 60_000);

  test("a payment delivered while the user tries to install: one install, paid for; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    for (let round = 0; round < 20; round++) {
      const buyer = await p.paidCheckout(id);
      const [delivered, ...attempts] = await Promise.all([
        p.deliver(buyer.event),
        ...Array.from({ length: 4 }, () => p.install(buyer.token, id)),
      ]);
      expect(delivered?.body.outcome).toBe("processed");
      // Before the payment's commit: 402; after it: 409 (the payment installed it).
      for (const attempt of attempts) expect([402, 409]).toContain(attempt.status);
      const installed = await installsOf(buyer.userId, id);
      expect(installed).toHaveLength(1);
      expect(installed[0]?.entitlementId).not.toBeNull();
    }
    expect(await installCount(id)).toBe(20);
  }, 60_000);

  test("a full refund meeting the user's reinstall never leaves the refunded purchase paying for an install; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    for (let round = 0; round < 20; round++) {
      const buyer = await p.paidCheckout(id);
      await p.deliver(buyer.event);
      expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
      await refundPluginPurchase(p.deps, buyer.paymentIntent.id);
      const refunded = p.lastEmitted("charge.refunded");
      const [reinstall, delivered] = await Promise.all([p.install(buyer.token, id), p.deliver(refunded)]);
      expect(delivered.body.outcome).toBe("processed");
      // Reinstalled first (201), then removed by the refund; or refused after it (402). Never left installed.
      expect([201, 402]).toContain(reinstall.status);
      expect(await installsOf(buyer.userId, id)).toEqual([]);
      expect((await purchasesOf(buyer.userId))[0]?.status).toBe("refunded");
      expect(await p.offered(buyer.userId)).toEqual([]);
    }
    expect(await installCount(id)).toBe(0);
  }, 60_000);

  test("a subscription's deletion delivered with its checkout's completion: never left active; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    for (let round = 0; round < 20; round++) {
      const buyer = await p.subscribedCheckout(id);
      await p.stripe.subscriptions.cancel(buyer.subscription.id);
      const deleted = p.lastEmitted("customer.subscription.deleted");
      // Both at the same moment, started in either order.
      const order = round % 2 === 0 ? [buyer.event, deleted] : [deleted, buyer.event];
      const answers = await Promise.all(order.map((event) => p.deliver(event)));
      expect(answers.map((answer) => answer.body.outcome)).toEqual(["processed", "processed"]);
      const bought = await purchasesOf(buyer.userId);
      expect(bought.map((row) => [row.status, row.endReason])).toEqual([["ended", "canceled"]]);
      const installed = await installsOf(buyer.userId, id);
      expect(installed.map((row) => row.entitlementId)).toEqual([null]);
      expect(await p.offered(buyer.userId)).toEqual([]);
    }
    expect(await installCount(id)).toBe(20);
  }, 60_000);

  test("a full refund delivered with its payment's completion: refunded, nothing left installed; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    for (let round = 0; round < 20; round++) {
      const buyer = await p.paidCheckout(id);
      await refundPluginPurchase(p.deps, buyer.paymentIntent.id);
      const refunded = p.lastEmitted("charge.refunded");
      // Both at the same moment, started in either order.
      const order = round % 2 === 0 ? [buyer.event, refunded] : [refunded, buyer.event];
      const answers = await Promise.all(order.map((event) => p.deliver(event)));
      expect(answers.map((answer) => answer.body.outcome)).toEqual(["processed", "processed"]);
      const bought = await purchasesOf(buyer.userId);
      expect(bought.map((row) => [row.status, row.amountRefunded])).toEqual([["refunded", 1500]]);
      expect(await installsOf(buyer.userId, id)).toEqual([]);
      expect(await p.offered(buyer.userId)).toEqual([]);
    }
    expect(await installCount(id)).toBe(0);
  }, 60_000);

  test("an account's erasure meeting its payment's completion: nothing of the user stays, no subscription runs on; 20 rounds", async () => {
    const monthly = await p.paidPlugin(publisher, MONTHLY);
    const oneOff = await p.paidPlugin(publisher, ONE_OFF);
    for (let round = 0; round < 20; round++) {
      const subscribing = round % 2 === 0;
      const buyer = subscribing ? await p.subscribedCheckout(monthly) : await p.paidCheckout(oneOff);
      const [delivered] = await Promise.all([p.deliver(buyer.event), p.erase(buyer.userId)]);
      expect(delivered.body.outcome).toBe("processed");
      expect(await purchasesOf(buyer.userId)).toEqual([]);
      expect(await db().select().from(installs).where(eq(installs.userId, buyer.userId))).toEqual([]);
      expect(
        await db()
          .select()
          .from(erasedUsers)
          .where(eq(erasedUsers.userIdSha256, erasedUserKey(buyer.userId))),
      ).toHaveLength(1);
      expect(await p.offered(buyer.userId)).toEqual([]);
      if ("subscription" in buyer) {
        // Cancelled, and its customer deleted, by the erasure (the completion first) or by the
        // completion (the erasure first).
        expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
        expect(p.fake.customers.has(String(buyer.subscription.customer))).toBe(false);
        const [kept] = await db().select().from(purchases).where(eq(purchases.subscriptionId, buyer.subscription.id));
        expect(kept).toMatchObject({ userId: null, customerId: null, status: "ended", endReason: "canceled" });
      } else {
        // Completed first: kept, as an erased buyer's one-off purchases are; erased first: refunded.
        const [kept] = await db().select().from(purchases).where(eq(purchases.paymentIntentId, buyer.paymentIntent.id));
        const refunded = p.fake.charges.get(buyer.charge.id)?.refunded === true;
        expect(kept).toMatchObject({ userId: null, customerId: null, status: refunded ? "refunded" : "active" });
      }
    }
    expect(await installCount(monthly)).toBe(0);
    expect(await installCount(oneOff)).toBe(0);
  }, 60_000);

  test("a first payment's refund delivered with its subscription's completion, each twice: counted once; 20 rounds", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const refundsOfPlugin = async () => {
      const items = (await p.call("GET", "/developers/me/sales?limit=50", { token: publisher.token })).body
        .items as Array<{
        plugin_id: string;
        totals: Array<{ purchases: number; refunds: { count: number; amount: number } }>;
      }>;
      return items.find((item) => item.plugin_id === id)?.totals[0];
    };
    for (let round = 0; round < 20; round++) {
      const buyer = await p.subscribedCheckout(id);
      await p.stripe.refunds.create({ payment_intent: buyer.paymentIntent?.id as string });
      const refunded = p.lastEmitted("charge.refunded");
      const events = round % 2 === 0 ? [buyer.event, refunded] : [refunded, buyer.event];
      const answers = await Promise.all([...events, ...events].map((event) => p.deliver(event)));
      expect(answers.map((answer) => answer.body.outcome).sort()).toEqual([
        "duplicate",
        "duplicate",
        "processed",
        "processed",
      ]);
      expect(await refundsOfPlugin()).toMatchObject({
        purchases: round + 1,
        refunds: { count: round + 1, amount: (round + 1) * 499 },
      });
    }
  }, 60_000);

  test("a publisher's erasure meeting a subscription's completion: the subscription is cancelled, nothing left for the plugin; 30 rounds", async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 30; round++) {
      const dev = await p.payablePublisher();
      const id = await p.paidPlugin(dev, MONTHLY);
      const buyer = await p.subscribedCheckout(id);
      const before = await paidCount();
      const delivered = await completionWithErasure(
        round,
        () => p.deliver(buyer.event),
        () => p.erase(dev.userId),
      );
      expect(delivered.body.outcome).toBe("processed");
      await expectNothingLeft(buyer.userId, id);
      // Cancelled by the erasure (the completion first) or by the completion (the erasure first).
      expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
      expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`).length).toBeGreaterThan(0);
      outcomes.add((await paidCount()) - before === 1 ? "recorded" : "given back");
      // Stripe's word of it, delivered afterwards, brings nothing back.
      expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
      await expectNothingLeft(buyer.userId, id);
    }
    // The rounds met the erasure at every point: before it, while it ran, and after it.
    expect([...outcomes].sort()).toEqual(["given back", "recorded"]);
  }, 120_000);

  test("a publisher's erasure meeting a one-off payment's completion: refunded unless it was a sale before the erasure; 30 rounds", async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 30; round++) {
      const dev = await p.payablePublisher();
      const id = await p.paidPlugin(dev, ONE_OFF);
      const buyer = await p.paidCheckout(id);
      const before = await paidCount();
      const delivered = await completionWithErasure(
        round,
        () => p.deliver(buyer.event),
        () => p.erase(dev.userId),
      );
      expect(delivered.body.outcome).toBe("processed");
      await expectNothingLeft(buyer.userId, id);
      // Recorded before the erasure (a sale the erasure takes with the plugin, as it takes every
      // earlier one), or refunded in full: never neither, never both.
      const recorded = (await paidCount()) - before;
      const refunds = p.fake
        .requestsTo("POST", "/v1/refunds")
        .filter((each) => each.params.payment_intent === buyer.paymentIntent.id);
      expect([recorded, refunds.length]).toEqual(recorded === 1 ? [1, 0] : [0, 1]);
      expect(p.fake.charges.get(buyer.charge.id)?.refunded).toBe(recorded === 0);
      outcomes.add(recorded === 1 ? "recorded" : "refunded");
    }
    // The rounds met the erasure at every point: before it, while it ran, and after it.
    expect([...outcomes].sort()).toEqual(["recorded", "refunded"]);
  }, 120_000);

  test("a renewal's invoice.paid and invoice.payment_succeeded, each twice, at once: one renewal; 10 rounds", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    const [purchase] = await purchasesOf(buyer.userId);
    for (let round = 0; round < 10; round++) {
      const renewal = p.fake.renewSubscription(buyer.subscription.id);
      const events = [renewal.paid, renewal.succeeded, renewal.paid, renewal.succeeded];
      const answers = await Promise.all(events.map((event) => p.deliver(event)));
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      expect(answers.filter((answer) => answer.body.outcome === "duplicate")).toHaveLength(2);
    }
    const renewals = await db()
      .select()
      .from(subscriptionRenewals)
      .where(eq(subscriptionRenewals.purchaseId, purchase?.id as string));
    expect(renewals).toHaveLength(10);
    expect(new Set(renewals.map((row) => row.invoiceId)).size).toBe(10);
    expect(renewals.every((row) => row.amount === 499 && row.platformFee === 62)).toBe(true);
  }, 60_000);
});
