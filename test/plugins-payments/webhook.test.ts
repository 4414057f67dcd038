// Strategy: see harness.ts. Each flow runs through the real SDK against the fake Stripe API, which
// emits the events Stripe would send; each is signed like Stripe signs it, verified, and turned into
// its domain outcome.
import { afterAll, describe, expect, test } from "bun:test";
import {
  cancelPluginSubscription,
  invoicePaidBy,
  keepPluginSubscription,
  outcomeOf,
  type PaymentOutcome,
  refundPluginPurchase,
  verifyPaymentEvent,
} from "../../src/plugins/payments";
import { ServiceError } from "../../src/shared/errors";
import { captureLogger } from "../../src/shared/testing";
import { MONTHLY, ONE_OFF, startPayments } from "./harness";

const h = startPayments();
afterAll(() => h.stop());

/** Delivers a payload signed with the purchases endpoint's secret and returns its outcome. */
const deliver = async (payload: string): Promise<PaymentOutcome> =>
  outcomeOf(await verifyPaymentEvent(h.config, h.deps.logger, { payload, signature: await h.sign(payload) }));

const rejection = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
};

const eventOf = (payload: string) => JSON.parse(payload) as { id: string; created: number };

/** A one-off purchase checked out and paid in Stripe. */
async function boughtOnce() {
  const { accountId } = await h.publisher();
  const input = h.checkoutInput(accountId, ONE_OFF);
  const { checkout } = await h.sessionOf(input);
  return { input, accountId, ...h.fake.completePayment(checkout.sessionId) };
}

/** A monthly plugin subscribed to in Stripe. */
async function subscribed() {
  const { accountId } = await h.publisher();
  const input = h.checkoutInput(accountId, MONTHLY);
  const { checkout } = await h.sessionOf(input);
  return { input, accountId, ...h.fake.completeCheckout(checkout.sessionId) };
}

describe("purchase paid", () => {
  test("a completed one-off checkout names the user, plugin, version, amount and the platform's fee", async () => {
    const { input, event, session, paymentIntent } = await boughtOnce();
    expect(await deliver(event)).toEqual({
      kind: "purchase_paid",
      eventId: eventOf(event).id,
      occurredAt: eventOf(event).created * 1000,
      userId: input.userId,
      pluginId: input.pluginId,
      version: "1.2.0",
      model: "one_off",
      amount: 1500,
      currency: "eur",
      platformFee: 300,
      checkoutSessionId: session.id,
      paymentIntentId: paymentIntent.id,
      subscriptionId: null,
      firstInvoiceId: null,
      customerId: null,
    });
  });

  test("a completed monthly checkout names the subscription, its first invoice and the first month's fee", async () => {
    const { input, event, subscription, session, invoice } = await subscribed();
    expect(await deliver(event)).toMatchObject({
      kind: "purchase_paid",
      userId: input.userId,
      pluginId: input.pluginId,
      version: "1.2.0",
      model: "monthly",
      amount: 499,
      platformFee: 100,
      paymentIntentId: null,
      subscriptionId: subscription.id,
      firstInvoiceId: invoice.id,
      customerId: session.customer,
    });
  });

  test("a bank debit still processing is not a purchase yet; its success is", async () => {
    const { event, session } = await boughtOnce();
    const processing = h.fake.event("checkout.session.completed", { ...session, payment_status: "unpaid" });
    expect(await deliver(processing)).toMatchObject({ kind: "ignored", reason: "payment_pending" });
    const succeeded = h.fake.event("checkout.session.async_payment_succeeded", session);
    expect(await deliver(succeeded)).toMatchObject({ kind: "purchase_paid", amount: 1500, platformFee: 300 });
    expect(eventOf(succeeded).id).not.toBe(eventOf(event).id);
  });

  test("billing's tier checkouts and sessions with broken metadata are not purchases", async () => {
    const tier = h.fake.event("checkout.session.completed", {
      id: "cs_tier",
      object: "checkout.session",
      mode: "subscription",
      payment_status: "paid",
      metadata: { user_id: "u1", tier: "pro" },
    });
    expect(await deliver(tier)).toMatchObject({ kind: "ignored", reason: "not_ours" });
    const broken = h.fake.event("checkout.session.completed", {
      id: "cs_broken",
      object: "checkout.session",
      mode: "payment",
      payment_status: "paid",
      metadata: { kind: "plugin_purchase", user_id: "u1" },
    });
    expect(await deliver(broken)).toMatchObject({ kind: "ignored", reason: "malformed_metadata" });
  });
});

describe("purchase refunded", () => {
  test("a full refund gives the buyer everything back, the fee and the publisher's share included", async () => {
    const { input, paymentIntent, charge, applicationFee } = await boughtOnce();
    const refund = await refundPluginPurchase(h.deps, paymentIntent.id);
    expect(refund).toMatchObject({ amount: 1500, status: "succeeded" });
    expect(h.fake.applicationFees.get(String(applicationFee?.id))).toMatchObject({
      amount_refunded: 300,
      refunded: true,
    });
    expect(h.fake.transfers.get(String(charge.transfer))).toMatchObject({ amount_reversed: 1500, reversed: true });
    const [payload] = h.fake.emittedOf("charge.refunded").slice(-1);
    expect(await deliver(payload as string)).toEqual({
      kind: "purchase_refunded",
      eventId: eventOf(payload as string).id,
      occurredAt: eventOf(payload as string).created * 1000,
      paymentIntentId: paymentIntent.id,
      chargeId: charge.id,
      amountRefunded: 1500,
      currency: "eur",
      fullyRefunded: true,
      purchase: { userId: input.userId, pluginId: input.pluginId, version: "1.2.0" },
    });
  });

  test("a retried refund is the same refund, not a second one", async () => {
    const { paymentIntent } = await boughtOnce();
    const first = await refundPluginPurchase(h.deps, paymentIntent.id);
    const sent = h.fake.emittedOf("charge.refunded").length;
    expect(await refundPluginPurchase(h.deps, paymentIntent.id)).toEqual(first);
    expect(h.fake.emittedOf("charge.refunded").length).toBe(sent);
    const keys = h.fake
      .requestsTo("POST", "/v1/refunds")
      .slice(-2)
      .map((request) => request.idempotencyKey);
    expect(keys).toEqual([`plugin-refund:${paymentIntent.id}`, `plugin-refund:${paymentIntent.id}`]);
  });

  test("a purchase already refunded in the dashboard is 409 already_refunded", async () => {
    const { paymentIntent } = await boughtOnce();
    await h.deps.config.stripe?.refunds.create({ payment_intent: paymentIntent.id });
    const error = await rejection(refundPluginPurchase(h.deps, paymentIntent.id));
    expect([error.status, error.code]).toEqual([409, "already_refunded"]);
  });

  test("a partial refund made in the dashboard is reported as not full", async () => {
    const { paymentIntent } = await boughtOnce();
    await h.deps.config.stripe?.refunds.create({ payment_intent: paymentIntent.id, amount: 500 });
    const [payload] = h.fake.emittedOf("charge.refunded").slice(-1);
    expect(await deliver(payload as string)).toMatchObject({
      kind: "purchase_refunded",
      amountRefunded: 500,
      fullyRefunded: false,
    });
  });

  test("a refund of a subscription's first payment names its payment, and Stripe says which invoice it paid", async () => {
    const { paymentIntent, charge, invoice } = await subscribed();
    if (!paymentIntent || !charge) throw new Error("a subscription paying a connected account has a charge");
    await h.deps.config.stripe?.refunds.create({ payment_intent: paymentIntent.id, amount: 100 });
    const [payload] = h.fake.emittedOf("charge.refunded").slice(-1);
    // The charge carries none of the subscription's metadata: the payment intent is what names it.
    expect(await deliver(payload as string)).toEqual({
      kind: "purchase_refunded",
      eventId: eventOf(payload as string).id,
      occurredAt: eventOf(payload as string).created * 1000,
      paymentIntentId: paymentIntent.id,
      chargeId: charge.id,
      amountRefunded: 100,
      currency: "eur",
      fullyRefunded: false,
      purchase: null,
    });
    expect(await invoicePaidBy(h.deps, paymentIntent.id)).toBe(invoice.id);
  });

  test("an unknown payment intent is a 502 refusal of Stripe's, not a refund", async () => {
    const error = await rejection(refundPluginPurchase(h.deps, "pi_unknown"));
    expect([error.status, error.code]).toEqual([502, "stripe_error"]);
  });

  test("a refunded charge that paid no connected account (billing's) is not ours", async () => {
    const payload = h.fake.event("charge.refunded", {
      id: "ch_tier",
      object: "charge",
      amount: 1900,
      amount_refunded: 1900,
      refunded: true,
      currency: "eur",
      payment_intent: "pi_tier",
      transfer_data: null,
      metadata: {},
    });
    expect(await deliver(payload)).toMatchObject({ kind: "ignored", reason: "not_ours" });
  });
});

describe("subscription ended", () => {
  test("a subscription cancelled at once ends for good", async () => {
    const { input, subscription } = await subscribed();
    await cancelPluginSubscription(h.deps, subscription.id, "now");
    const [payload] = h.fake.emittedOf("customer.subscription.deleted").slice(-1);
    expect(await deliver(payload as string)).toEqual({
      kind: "subscription_ended",
      eventId: eventOf(payload as string).id,
      occurredAt: eventOf(payload as string).created * 1000,
      userId: input.userId,
      pluginId: input.pluginId,
      version: "1.2.0",
      subscriptionId: subscription.id,
      reason: "canceled",
      status: "canceled",
    });
    // Cancelling what has already ended is done, not an error.
    h.fake.subscriptions.delete(subscription.id);
    await cancelPluginSubscription(h.deps, subscription.id, "now");
  });

  test("cancelling at the period's end changes nothing until Stripe ends it", async () => {
    const { subscription } = await subscribed();
    await cancelPluginSubscription(h.deps, subscription.id, "period_end");
    const current = h.fake.subscriptions.get(subscription.id);
    expect(current).toMatchObject({ status: "active", cancel_at_period_end: true });
    const update = h.fake.event("customer.subscription.updated", current as Record<string, unknown>, {
      previousAttributes: { cancel_at_period_end: false },
    });
    expect(await deliver(update)).toMatchObject({ kind: "ignored", reason: "no_change" });
  });

  test("a failed renewal Stripe retries keeps the plugin; the last failed attempt ends it", async () => {
    const { input, subscription } = await subscribed();
    const retrying = h.fake.failInvoicePayment(subscription.id);
    expect(await deliver(retrying.event)).toMatchObject({ kind: "ignored", reason: "no_change" });
    const [pastDue] = h.fake.emittedOf("customer.subscription.updated").slice(-1);
    expect(await deliver(pastDue as string)).toMatchObject({ kind: "ignored", reason: "no_change" });

    const final = h.fake.failInvoicePayment(subscription.id, { final: true });
    expect(await deliver(final.event)).toEqual({
      kind: "subscription_ended",
      eventId: eventOf(final.event).id,
      occurredAt: eventOf(final.event).created * 1000,
      userId: input.userId,
      pluginId: input.pluginId,
      version: "1.2.0",
      subscriptionId: subscription.id,
      reason: "lapsed",
      status: "payment_failed",
    });
    const [unpaid] = h.fake.emittedOf("customer.subscription.updated").slice(-1);
    expect(await deliver(unpaid as string)).toMatchObject({
      kind: "subscription_ended",
      reason: "lapsed",
      status: "unpaid",
      subscriptionId: subscription.id,
    });
  });

  test("a lapsed subscription paid again resumes", async () => {
    const { subscription } = await subscribed();
    h.fake.failInvoicePayment(subscription.id, { final: true });
    const active = h.fake.updateSubscription(subscription.id, { status: "active" });
    const payload = h.fake.event("customer.subscription.updated", active, { previousAttributes: { status: "unpaid" } });
    expect(await deliver(payload)).toMatchObject({
      kind: "subscription_resumed",
      subscriptionId: subscription.id,
      status: "active",
    });
  });

  test("billing's tier subscriptions are not ours", async () => {
    const tier = h.fake.createSubscription({ customer: "cus_x", price: "price_pro", metadata: { user_id: "u1" } });
    const canceled = h.fake.updateSubscription(tier.id, { status: "canceled" });
    expect(await deliver(h.fake.event("customer.subscription.deleted", canceled))).toMatchObject({
      kind: "ignored",
      reason: "not_ours",
    });
    expect(
      await deliver(h.fake.event("invoice.payment_failed", h.fake.invoice(tier.id, "open", { final: true }))),
    ).toMatchObject({
      kind: "ignored",
      reason: "not_ours",
    });
  });
});

describe("subscription renewed", () => {
  test("a paid renewal names the invoice, the amount and the platform's percent of it; the first invoice is no renewal", async () => {
    const { input, subscription } = await subscribed();
    const [first] = h.fake.emittedOf("invoice.paid").slice(-1);
    expect(await deliver(first as string)).toMatchObject({ kind: "ignored", reason: "first_invoice" });
    const renewal = h.fake.renewSubscription(subscription.id);
    const expected = {
      kind: "subscription_renewed" as const,
      userId: input.userId,
      pluginId: input.pluginId,
      version: "1.2.0",
      subscriptionId: subscription.id,
      invoiceId: renewal.invoice.id,
      amount: 499,
      currency: "eur",
      platformFee: 100,
    };
    expect(await deliver(renewal.paid)).toEqual({
      ...expected,
      eventId: eventOf(renewal.paid).id,
      occurredAt: eventOf(renewal.paid).created * 1000,
    });
    expect(await deliver(renewal.succeeded)).toMatchObject({ ...expected, eventId: eventOf(renewal.succeeded).id });
  });

  test("billing's tier invoices and invoices with nothing paid are not counted", async () => {
    const tier = h.fake.createSubscription({ customer: "cus_x", price: "price_pro", metadata: { user_id: "u1" } });
    expect(await deliver(h.fake.event("invoice.paid", h.fake.invoice(tier.id, "paid")))).toMatchObject({
      kind: "ignored",
      reason: "not_ours",
    });
    const { subscription } = await subscribed();
    const credited = { ...h.fake.invoice(subscription.id, "paid"), amount_paid: 0 };
    expect(await deliver(h.fake.event("invoice.paid", credited))).toMatchObject({
      kind: "ignored",
      reason: "no_change",
    });
  });

  test("keeping a subscription set to end renews it; one Stripe ended is reported ended", async () => {
    const { subscription } = await subscribed();
    await cancelPluginSubscription(h.deps, subscription.id, "period_end");
    expect(await keepPluginSubscription(h.deps, subscription.id)).toBe("kept");
    expect(h.fake.subscriptions.get(subscription.id)).toMatchObject({ status: "active", cancel_at_period_end: false });
    await cancelPluginSubscription(h.deps, subscription.id, "now");
    expect(await keepPluginSubscription(h.deps, subscription.id)).toBe("ended");
    h.fake.subscriptions.delete(subscription.id);
    expect(await keepPluginSubscription(h.deps, subscription.id)).toBe("ended");
    h.fake.unavailable = true;
    try {
      const error = await rejection(keepPluginSubscription(h.deps, subscription.id));
      expect([error.status, error.code]).toEqual([503, "stripe_unavailable"]);
    } finally {
      h.fake.unavailable = false;
    }
  });
});

describe("verification", () => {
  test("a forged, tampered, unsigned, stale or non-JSON delivery is 400 invalid_signature", async () => {
    const { event } = await boughtOnce();
    const { logger, lines } = captureLogger();
    const attempt = (payload: string, signature: string | null) =>
      rejection(verifyPaymentEvent(h.config, logger, { payload, signature }));
    const tampered = event.replace('"amount_total": 1500', '"amount_total": 1');
    expect(tampered).not.toBe(event);
    const stale = await h.sign(event, undefined, Math.floor(Date.now() / 1000) - 301);
    const cases = [
      await attempt(event, await h.sign(event, "whsec_someone_else")),
      await attempt(tampered, await h.sign(event)),
      await attempt(event, null),
      await attempt(event, "t=1,v1=nothex"),
      await attempt(event, stale),
      await attempt("{not json", await h.sign("{not json")),
    ];
    expect(cases.map((error) => [error.status, error.code])).toEqual(
      Array.from({ length: 6 }, () => [400, "invalid_signature"]),
    );
    expect(lines.filter((line) => line.msg === "plugin payment webhook signature rejected").length).toBe(5);
    // Within the tolerance the genuine delivery is accepted.
    const recent = await h.sign(event, undefined, Math.floor(Date.now() / 1000) - 200);
    expect((await verifyPaymentEvent(h.config, logger, { payload: event, signature: recent })).id).toBe(
      eventOf(event).id,
    );
  });

  test("the raw bytes verify as the text does", async () => {
    const { event } = await boughtOnce();
    const parsed = await verifyPaymentEvent(h.config, h.deps.logger, {
      payload: new TextEncoder().encode(event),
      signature: await h.sign(event),
    });
    expect(parsed.type).toBe("checkout.session.completed");
  });

  test("without a webhook secret every delivery is 503 naming the variable", async () => {
    const config = { ...h.config, webhookSecrets: [] };
    const { event } = await boughtOnce();
    const error = await rejection(
      verifyPaymentEvent(config, h.deps.logger, { payload: event, signature: await h.sign(event) }),
    );
    expect([error.status, error.code, error.details]).toEqual([
      503,
      "plugin_payments_unconfigured",
      { missing: ["PLUGINS_STRIPE_WEBHOOK_SECRET"] },
    ]);
  });
});

describe("redelivery", () => {
  test("the same event delivered twice gives the same outcome with the same event id", async () => {
    const { event } = await boughtOnce();
    const [first, second] = await Promise.all([deliver(event), deliver(event)]);
    expect(first).toEqual(second as PaymentOutcome);
    expect(first?.eventId).toBe(eventOf(event).id);
    // Another event about the same payment is another id: the store applies it on its own.
    const { event: other } = h.fake.completeOnboarding((await h.publisher("none")).accountId);
    expect((await deliver(other)).eventId).not.toBe(first?.eventId as string);
  });

  test("types plugin payments do not act on are ignored", async () => {
    const payload = h.fake.event("customer.created", { id: "cus_1", object: "customer" });
    expect(await deliver(payload)).toMatchObject({
      kind: "ignored",
      reason: "unhandled_type",
      type: "customer.created",
    });
  });
});
