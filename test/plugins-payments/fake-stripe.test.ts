// Strategy: the fake Stripe API's Connect side checked through the real SDK, against the refusals
// Stripe makes, and its tier-subscription side checked unchanged (what billing's tests rely on).
import { afterAll, describe, expect, test } from "bun:test";
import Stripe from "stripe";
import { FakeStripe } from "../../src/shared/testing/fake-stripe";

const fake = new FakeStripe();
fake.start();
afterAll(() => fake.stop());
const url = new URL(fake.url);
const stripe = new Stripe(fake.apiKey, {
  host: url.hostname,
  port: url.port,
  protocol: "http",
  maxNetworkRetries: 0,
  telemetry: false,
});

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: { statusCode?: number; code?: string; param?: string; message: string }) => ({
      status: error.statusCode,
      code: error.code,
      param: error.param,
      message: error.message,
    }),
  );

async function payableAccount() {
  const account = await stripe.accounts.create({ type: "express", capabilities: { transfers: { requested: true } } });
  fake.completeOnboarding(account.id);
  return account.id;
}

const item = (amount: number, recurring = false) => ({
  quantity: 1,
  price_data: {
    currency: "eur",
    unit_amount: amount,
    product_data: { name: "Plugin" },
    ...(recurring ? { recurring: { interval: "month" as const } } : {}),
  },
});

describe("Connect refusals, as Stripe makes them", () => {
  test("an application fee above the amount", async () => {
    const destination = await payableAccount();
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          mode: "payment",
          success_url: "https://a.test/s",
          line_items: [item(500)],
          payment_intent_data: { application_fee_amount: 501, transfer_data: { destination } },
        }),
      ),
    ).toMatchObject({ status: 400, param: "application_fee_amount" });
  });

  test("an application fee without a destination", async () => {
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          mode: "payment",
          success_url: "https://a.test/s",
          line_items: [item(500)],
          payment_intent_data: { application_fee_amount: 100 },
        }),
      ),
    ).toMatchObject({ status: 400, param: "payment_intent_data[application_fee_amount]" });
  });

  test("payment intent data in subscription mode, a fee percent in payment mode", async () => {
    const destination = await payableAccount();
    const base = { success_url: "https://a.test/s" };
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          ...base,
          mode: "subscription",
          line_items: [item(500, true)],
          payment_intent_data: { application_fee_amount: 100, transfer_data: { destination } },
        }),
      ),
    ).toMatchObject({ status: 400, param: "payment_intent_data" });
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          ...base,
          mode: "payment",
          line_items: [item(500)],
          subscription_data: { application_fee_percent: 10, transfer_data: { destination } },
        }),
      ),
    ).toMatchObject({ status: 400 });
  });

  test("a destination that does not exist", async () => {
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          mode: "subscription",
          success_url: "https://a.test/s",
          line_items: [item(500, true)],
          subscription_data: { application_fee_percent: 10, transfer_data: { destination: "acct_none" } },
        }),
      ),
    ).toMatchObject({ status: 400, code: "resource_missing" });
  });

  test("an account without a type, a link of an unknown type, a refund of nothing", async () => {
    expect(await refusal(stripe.accounts.create({}))).toMatchObject({ status: 400, code: "parameter_missing" });
    const account = await stripe.accounts.create({ type: "express" });
    expect(
      await refusal(stripe.accountLinks.create({ account: account.id, type: "account_everything" })),
    ).toMatchObject({ status: 400, param: "type" });
    expect(await refusal(stripe.refunds.create({}))).toMatchObject({ status: 400, code: "parameter_missing" });
    expect(await refusal(stripe.accounts.retrieve("acct_none"))).toMatchObject({
      status: 404,
      code: "resource_missing",
    });
  });

  test("a partial refund beyond what is left", async () => {
    const destination = await payableAccount();
    const session = await stripe.checkout.sessions.create({
      mode: "payment",
      success_url: "https://a.test/s",
      line_items: [item(1000)],
      payment_intent_data: { application_fee_amount: 200, transfer_data: { destination } },
    });
    const { paymentIntent } = fake.completePayment(session.id);
    const refund = await stripe.refunds.create({
      payment_intent: paymentIntent.id,
      amount: 600,
      refund_application_fee: true,
    });
    expect(refund).toMatchObject({ amount: 600, payment_intent: paymentIntent.id, status: "succeeded" });
    expect(await refusal(stripe.refunds.create({ payment_intent: paymentIntent.id, amount: 401 }))).toMatchObject({
      status: 400,
      code: "amount_too_large",
    });
    const charge = await stripe.charges.retrieve(String(refund.charge));
    expect(charge).toMatchObject({ amount_refunded: 600, refunded: false });
    const fee = await stripe.applicationFees.retrieve(String(charge.application_fee));
    expect(fee).toMatchObject({ amount: 200, amount_refunded: 120, refunded: false, account: destination });
    expect((await stripe.paymentIntents.retrieve(paymentIntent.id)).latest_charge).toBe(charge.id);
  });
});

describe("the tier subscriptions billing's tests use", () => {
  test("a session of a configured price still completes at 19 € with its paid invoice", async () => {
    const customer = await stripe.customers.create({ email: "a@b.test" });
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: "price_pro_monthly", quantity: 1 }],
      success_url: "https://a.test/s",
      subscription_data: { metadata: { user_id: "u1" } },
    });
    const feesBefore = fake.applicationFees.size;
    const { subscription } = fake.completeCheckout(session.id);
    expect(subscription).toMatchObject({
      customer: customer.id,
      status: "active",
      application_fee_percent: null,
      transfer_data: null,
      items: { data: [{ price: { id: "price_pro_monthly", object: "price" } }] },
    });
    expect(fake.sessions.get(session.id)).toMatchObject({
      amount_total: 1900,
      currency: "eur",
      payment_status: "paid",
    });
    const invoices = await stripe.invoices.list({ customer: customer.id });
    expect(invoices.data).toEqual([expect.objectContaining({ status: "paid", amount_paid: 1900, currency: "eur" })]);
    // No connected account: no fee for the platform.
    expect(fake.applicationFees.size).toBe(feesBefore);
  });

  test("a session naming an unknown customer is still 404", async () => {
    expect(
      await refusal(
        stripe.checkout.sessions.create({
          mode: "subscription",
          customer: "cus_unknown",
          line_items: [{ price: "price_pro_monthly", quantity: 1 }],
          success_url: "https://a.test/s",
        }),
      ),
    ).toMatchObject({ status: 404, code: "resource_missing" });
  });

  test("invoice snapshots keep their shape, and record a pending retry", () => {
    const subscription = fake.createSubscription({ customer: "cus_1", price: "price_pro_monthly" });
    expect(fake.invoice(subscription.id, "open")).toMatchObject({
      object: "invoice",
      customer: "cus_1",
      status: "open",
      parent: { subscription_details: { subscription: subscription.id } },
      next_payment_attempt: expect.any(Number),
    });
    expect(fake.invoice(subscription.id, "paid").next_payment_attempt).toBeNull();
  });
});

describe("subscriptions over time", () => {
  test("a renewal is a paid invoice of the price, with the platform's percent of it; both its events name it", async () => {
    const destination = await payableAccount();
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      line_items: [item(499, true)],
      success_url: "https://a.test/s",
      subscription_data: { application_fee_percent: 20, transfer_data: { destination } },
    });
    const { subscription } = fake.completeCheckout(session.id);
    const first = JSON.parse(fake.emittedOf("invoice.paid").at(-1) as string).data.object;
    expect(first).toMatchObject({ billing_reason: "subscription_create", amount_paid: 499, status: "paid" });
    const periodEnd = (subscription.items as { data: Array<{ current_period_end: number }> }).data[0]
      ?.current_period_end as number;
    const renewal = fake.renewSubscription(subscription.id);
    expect(renewal.invoice).toMatchObject({
      billing_reason: "subscription_cycle",
      amount_paid: 499,
      currency: "eur",
      parent: { subscription_details: { subscription: subscription.id } },
    });
    const paid = JSON.parse(renewal.paid);
    const succeeded = JSON.parse(renewal.succeeded);
    expect([paid.type, succeeded.type]).toEqual(["invoice.paid", "invoice.payment_succeeded"]);
    expect(paid.id).not.toBe(succeeded.id);
    expect(paid.data.object.id).toBe(succeeded.data.object.id);
    expect(renewal.subscription.items).toMatchObject({ data: [{ current_period_start: periodEnd }] });
    const fees = [...fake.applicationFees.values()].filter((fee) => fee.account === destination);
    expect(fees.map((fee) => fee.amount)).toEqual([100, 100]);
    expect((await stripe.invoices.list({ customer: String(subscription.customer) })).data).toHaveLength(2);
  });

  test("a canceled subscription refuses every change but its metadata, as Stripe does", async () => {
    const subscription = fake.createSubscription({ customer: "cus_1", price: "price_pro_monthly" });
    await stripe.subscriptions.cancel(subscription.id);
    expect(await refusal(stripe.subscriptions.update(subscription.id, { cancel_at_period_end: false }))).toMatchObject({
      status: 400,
      code: "invalid_canceled_subscription_fields",
      param: "cancel_at_period_end",
    });
    expect(await stripe.subscriptions.update(subscription.id, { metadata: { note: "kept" } })).toMatchObject({
      status: "canceled",
    });
    expect(() => fake.renewSubscription(subscription.id)).toThrow("canceled");
  });
});
