// Strategy: see harness.ts. A plugin purchase's Checkout Session through the real SDK: what Stripe is
// asked (mode, the publisher's account as destination, the platform's fee, the metadata), then what
// the fake Stripe records once the buyer pays (the application fee, the transfer).
import { afterAll, describe, expect, test } from "bun:test";
import { createPluginCheckout, platformFeeAmount, pluginPaymentsConfig } from "../../src/plugins/payments";
import { ConfigError, loadEnv } from "../../src/shared/env";
import { ServiceError } from "../../src/shared/errors";
import { isOwnIdempotencyKey, MONTHLY, ONE_OFF, startPayments } from "./harness";

const h = startPayments();
afterAll(() => h.stop());

const rejection = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
};

const lastCheckoutRequest = () => h.fake.requestsTo("POST", "/v1/checkout/sessions").at(-1);

describe("one-off purchase", () => {
  test("a payment session paying the publisher's account, the platform's 20% as application fee", async () => {
    const { accountId } = await h.publisher();
    const input = h.checkoutInput(accountId, ONE_OFF);
    const { checkout } = await h.sessionOf(input);
    expect(checkout).toEqual({
      sessionId: expect.stringMatching(/^cs_test_/),
      url: expect.stringContaining("/c/pay/cs_test_"),
      platformFeeAmount: 300,
      platformFeePercent: 20,
    });
    const metadata = {
      kind: "plugin_purchase",
      user_id: input.userId,
      plugin_id: input.pluginId,
      plugin_version: "1.2.0",
      pricing_model: "one_off",
      platform_fee_percent: "20",
      platform_fee_amount: "300",
    };
    const request = lastCheckoutRequest();
    expect(request?.params).toEqual({
      mode: "payment",
      client_reference_id: input.userId,
      success_url: input.successUrl,
      cancel_url: input.cancelUrl,
      metadata,
      line_items: [
        {
          quantity: "1",
          price_data: {
            currency: "eur",
            unit_amount: "1500",
            product_data: { name: "Weather", metadata: { plugin_id: input.pluginId } },
          },
        },
      ],
      payment_intent_data: { application_fee_amount: "300", transfer_data: { destination: accountId }, metadata },
    });
    expect(request?.idempotencyKey).toStartWith(`plugin-checkout:${input.userId}:`);
  });

  test("once paid, Stripe holds the platform's fee and moved the payment to the publisher", async () => {
    const { accountId } = await h.publisher();
    const { checkout } = await h.sessionOf(h.checkoutInput(accountId, ONE_OFF));
    const paid = h.fake.completePayment(checkout.sessionId);
    expect(paid.paymentIntent).toMatchObject({ amount: 1500, application_fee_amount: 300, status: "succeeded" });
    expect(paid.applicationFee).toMatchObject({ account: accountId, amount: 300, currency: "eur" });
    expect(h.fake.applicationFees.get(String(paid.charge.application_fee))?.amount).toBe(300);
    expect(h.fake.transfers.get(String(paid.charge.transfer))).toMatchObject({ destination: accountId, amount: 1500 });
    expect(paid.session).toMatchObject({ payment_status: "paid", payment_intent: paid.paymentIntent.id });
  });

  test("the fee is rounded to the nearest cent and follows PLUGIN_PLATFORM_FEE_PERCENT", async () => {
    expect([platformFeeAmount(999, 20), platformFeeAmount(1, 20), platformFeeAmount(250, 12.5)]).toEqual([200, 0, 31]);
    const other = startPayments({ env: { PLUGIN_PLATFORM_FEE_PERCENT: "12.5" } });
    try {
      const { accountId } = await other.publisher();
      const { checkout } = await other.sessionOf(
        other.checkoutInput(accountId, { model: "one_off", amount: 999, currency: "usd" }),
      );
      expect(checkout.platformFeeAmount).toBe(125);
      const paid = other.fake.completePayment(checkout.sessionId);
      expect(paid.applicationFee?.amount).toBe(125);
    } finally {
      other.stop();
    }
  });

  test("a double click within the window gets the same session", async () => {
    const { accountId } = await h.publisher();
    const input = h.checkoutInput(accountId, ONE_OFF);
    const [first, second] = await Promise.all([
      createPluginCheckout(h.deps, input),
      createPluginCheckout(h.deps, input),
    ]);
    expect(second?.sessionId).toBe(first?.sessionId as string);
    const keys = h.fake
      .requestsTo("POST", "/v1/checkout/sessions")
      .slice(-2)
      .map((request) => request.idempotencyKey);
    expect(keys.every(isOwnIdempotencyKey)).toBe(true);
    expect(new Set(keys).size).toBe(1);
    // Another buyer of the same plugin is another session.
    const other = await createPluginCheckout(h.deps, { ...input, userId: `${input.userId}-other` });
    expect(other.sessionId).not.toBe(first?.sessionId as string);
  });

  test("a known buyer's Stripe customer is used", async () => {
    const { accountId } = await h.publisher();
    const customer = await h.deps.config.stripe?.customers.create({ email: "buyer@example.com" });
    await h.sessionOf(h.checkoutInput(accountId, ONE_OFF, { customerId: customer?.id }));
    expect(lastCheckoutRequest()?.params.customer).toBe(customer?.id);
  });
});

describe("monthly purchase", () => {
  test("a subscription session with the platform's percent of every invoice", async () => {
    const { accountId } = await h.publisher();
    const input = h.checkoutInput(accountId, MONTHLY);
    const { checkout } = await h.sessionOf(input);
    expect(checkout).toMatchObject({ platformFeeAmount: null, platformFeePercent: 20 });
    const metadata = {
      kind: "plugin_purchase",
      user_id: input.userId,
      plugin_id: input.pluginId,
      plugin_version: "1.2.0",
      pricing_model: "monthly",
      platform_fee_percent: "20",
    };
    expect(lastCheckoutRequest()?.params).toMatchObject({
      mode: "subscription",
      metadata,
      line_items: [
        { quantity: "1", price_data: { currency: "eur", unit_amount: "499", recurring: { interval: "month" } } },
      ],
      subscription_data: { application_fee_percent: "20", transfer_data: { destination: accountId }, metadata },
    });
    expect(lastCheckoutRequest()?.params.payment_intent_data).toBeUndefined();
  });

  test("once paid, the subscription carries the percent and the first invoice's fee goes to the platform", async () => {
    const { accountId } = await h.publisher();
    const { checkout } = await h.sessionOf(h.checkoutInput(accountId, MONTHLY));
    const { subscription, session } = h.fake.completeCheckout(checkout.sessionId);
    expect(subscription).toMatchObject({
      application_fee_percent: 20,
      transfer_data: { destination: accountId },
      metadata: { kind: "plugin_purchase", pricing_model: "monthly" },
    });
    expect(session).toMatchObject({ amount_total: 499, currency: "eur", customer: expect.stringMatching(/^cus_/) });
    const fees = [...h.fake.applicationFees.values()].filter((fee) => fee.account === accountId);
    expect(fees.map((fee) => fee.amount)).toEqual([100]);
  });
});

describe("a publisher who cannot be paid", () => {
  for (const onboarding of ["none", "unverified"] as const) {
    test(`onboarding ${onboarding === "none" ? "not started" : "still verified"}: 409 publisher_not_payable, no session`, async () => {
      const { accountId } = await h.publisher(onboarding);
      const sessionsBefore = h.fake.sessions.size;
      for (const pricing of [ONE_OFF, MONTHLY]) {
        const error = await rejection(createPluginCheckout(h.deps, h.checkoutInput(accountId, pricing)));
        expect([error.status, error.code]).toEqual([409, "publisher_not_payable"]);
        expect(error.message).toContain("cannot accept payments yet");
      }
      expect(h.fake.sessions.size).toBe(sessionsBefore);
    });
  }

  test("an account Stripe does not know: 409 as well", async () => {
    const error = await rejection(createPluginCheckout(h.deps, h.checkoutInput("acct_deleted", ONE_OFF)));
    expect([error.status, error.code]).toEqual([409, "publisher_not_payable"]);
  });

  test("Stripe itself refuses a destination that cannot receive transfers", async () => {
    const { accountId } = await h.publisher("none");
    const stripe = h.deps.config.stripe;
    const refused = await stripe?.checkout.sessions
      .create({
        mode: "payment",
        success_url: "https://a.test/s",
        line_items: [{ quantity: 1, price_data: { currency: "eur", unit_amount: 500, product_data: { name: "x" } } }],
        payment_intent_data: { application_fee_amount: 100, transfer_data: { destination: accountId } },
      })
      .then(
        () => undefined,
        (error: { code?: string; statusCode?: number }) => error,
      );
    expect(refused).toMatchObject({ statusCode: 400, code: "insufficient_capabilities_for_transfer" });
  });
});

describe("PLUGIN_PLATFORM_FEE_PERCENT", () => {
  const parse = (value?: string) =>
    pluginPaymentsConfig(
      loadEnv({ SERVICE_NAME: "plugins", ...(value === undefined ? {} : { PLUGIN_PLATFORM_FEE_PERCENT: value }) }),
    ).platformFeePercent;

  test("defaults to 20 (also when empty) and takes 0 to 100 with up to two decimals", () => {
    expect([parse(), parse(""), parse("0"), parse("100"), parse("12.5"), parse("7.25")]).toEqual([
      20, 20, 0, 100, 12.5, 7.25,
    ]);
  });

  for (const value of ["-1", "100.5", "12.345", "twenty"]) {
    test(`${value} stops the start naming the variable`, () => {
      expect(() => parse(value)).toThrow(ConfigError);
      expect(() => parse(value)).toThrow(/PLUGIN_PLATFORM_FEE_PERCENT/);
    });
  }
});
