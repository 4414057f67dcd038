// Paid plugins end to end over HTTP: a publisher's Stripe Express account and its onboarding, a
// user's Checkout paying the publisher with the platform's fee kept, the signed webhook installing
// the plugin (the chat lookup then offers it), refunds uninstalling it, a subscription's lapse,
// resumption and end, a subscription's events out of order, uninstalling and reinstalling a monthly
// plugin, renewals and their refunds, refunds of a subscription's first payment, a refund delivered
// before its payment's completion, account deletion (a payment completed afterwards given back, for
// an erased buyer or for an erased publisher's plugin, a publisher's Stripe account and a buyer's
// Stripe customers deleted), the export of purchases, and the publisher's sales.
// The real stripe-node client talks to the fake Stripe API; PostgreSQL and Redis are real.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { createPluginsContext } from "../../src/plugins";
import { erasedUserKey } from "../../src/plugins/erased-users";
import { refundPluginPurchase } from "../../src/plugins/payments";
import { receivePaymentWebhook } from "../../src/plugins/purchases";
import {
  checkoutGrants,
  developers,
  erasedPlugins,
  erasedUsers,
  installs,
  pluginRows,
  purchases,
  subscriptionStates,
} from "../../src/plugins/tables";
import { publishUserDeleted } from "../../src/shared/events/user-deleted";
import { captureLogger, eventually } from "../../src/shared/testing";
import { signWebhook } from "../../src/shared/testing/fake-stripe";
import { type Developer, exportPartOf, manifest, newUserId } from "./harness";
import {
  CONNECT_WEBHOOK_SECRET,
  codeOf,
  MONTHLY,
  ONE_OFF,
  type PaidPlugins,
  RETURN,
  startPaidPlugins,
  WEBHOOK_SECRET,
} from "./payments-harness";

let p: PaidPlugins;
let publisher: Developer & { accountId: string };
beforeAll(async () => {
  p = await startPaidPlugins();
  publisher = await p.payablePublisher();
});
afterAll(() => p.ctx.close());

const db = () => p.server.platform.db;
const purchasesOf = (userId: string) => db().select().from(purchases).where(eq(purchases.userId, userId));
const purchaseBySubscription = async (id: string) =>
  (await db().select().from(purchases).where(eq(purchases.subscriptionId, id)))[0];
const installOf = async (userId: string, pluginId: string) =>
  (
    await db()
      .select()
      .from(installs)
      .where(and(eq(installs.userId, userId), eq(installs.pluginId, pluginId)))
  )[0];
const installCount = async (id: string) =>
  (await db().select().from(pluginRows).where(eq(pluginRows.id, id)))[0]?.installCount;
const listed = async (token: string) => (await p.call("GET", "/installs", { token })).body.items;

async function listen(userId: string) {
  const heard: Array<Record<string, unknown>> = [];
  const { bus, keys } = p.server.platform;
  p.ctx.defer(await bus.subscribe(keys.pluginsChanged(userId), (message) => heard.push(JSON.parse(message))));
  return heard;
}
const heardAll = (heard: unknown[], count: number) =>
  eventually(
    () => heard,
    (seen) => seen.length >= count,
  );

describe("publishers' payment accounts", () => {
  test("a developer makes one Stripe account, onboards, and Stripe's account.updated makes them payable", async () => {
    const dev = await p.developer();
    expect(codeOf(await p.call("GET", "/developers/me/payment-account", { token: dev.token }))).toEqual({
      status: 404,
      code: "not_found",
    });
    const created = await p.call("POST", "/developers/me/payment-account", {
      token: dev.token,
      body: { country: "IT" },
    });
    expect(created.status).toBe(201);
    const accountId = created.body.account_id as string;
    expect(created.body).toMatchObject({
      account_id: expect.stringMatching(/^acct_/),
      charges_enabled: false,
      payouts_enabled: false,
      details_submitted: false,
      currently_due: expect.arrayContaining(["external_account"]),
      disabled_reason: "requirements.past_due",
    });
    const [request] = p.fake.requestsTo("POST", "/v1/accounts").slice(-1);
    expect(request?.params).toMatchObject({
      type: "express",
      country: "IT",
      metadata: { kind: "plugin_publisher", publisher_id: dev.userId },
    });
    expect(codeOf(await p.call("POST", "/developers/me/payment-account", { token: dev.token, body: {} }))).toEqual({
      status: 409,
      code: "payment_account_exists",
    });

    const link = await p.call("POST", "/developers/me/payment-account/onboarding-link", {
      token: dev.token,
      body: { refresh_url: "https://app.adiuva.test/publish/again", return_url: "adiuva://plugins/onboarded" },
    });
    expect(link.status).toBe(200);
    expect(link.body).toEqual({ url: expect.stringContaining(accountId), expires_at: expect.any(String) });
    expect(p.fake.accountLinks.at(-1)).toMatchObject({
      account: accountId,
      type: "account_onboarding",
      refresh_url: "https://app.adiuva.test/publish/again",
      return_url: "adiuva://plugins/onboarded",
    });

    // Not onboarded: nobody can buy the developer's paid plugins yet.
    const id = await p.paidPlugin(dev, ONE_OFF);
    const buyer = await p.token(newUserId(), "team");
    expect(codeOf(await p.checkout(buyer, id))).toEqual({ status: 409, code: "publisher_not_payable" });

    const { event } = p.fake.completeOnboarding(accountId);
    expect((await p.deliver(event, CONNECT_WEBHOOK_SECRET)).body).toEqual({ received: true, outcome: "processed" });
    const [row] = await db().select().from(developers).where(eq(developers.userId, dev.userId));
    expect(row).toMatchObject({
      stripeAccountId: accountId,
      chargesEnabled: true,
      payoutsEnabled: true,
      detailsSubmitted: true,
    });
    expect((await p.call("GET", "/developers/me/payment-account", { token: dev.token })).body).toMatchObject({
      account_id: accountId,
      charges_enabled: true,
      payouts_enabled: true,
      details_submitted: true,
      currently_due: [],
      disabled_reason: null,
    });
    expect((await p.checkout(buyer, id)).status).toBe(200);

    // An older account.updated delivered late changes nothing.
    const stale = p.fake.event(
      "account.updated",
      { ...(p.fake.accounts.get(accountId) ?? {}), charges_enabled: false, payouts_enabled: false },
      { account: accountId, created: Math.floor(Date.now() / 1000) - 3600 },
    );
    expect((await p.deliver(stale, CONNECT_WEBHOOK_SECRET)).body.outcome).toBe("processed");
    const [after] = await db().select().from(developers).where(eq(developers.userId, dev.userId));
    expect(after?.chargesEnabled).toBe(true);
  });

  test("no token 401, not a developer 403, malformed input 4xx, an origin not allowed 422, no account 404", async () => {
    const routes = [
      ["POST", "/developers/me/payment-account", {}],
      ["GET", "/developers/me/payment-account", undefined],
      [
        "POST",
        "/developers/me/payment-account/onboarding-link",
        { refresh_url: RETURN.success_url, return_url: RETURN.success_url },
      ],
    ] as const;
    const stranger = await p.token(newUserId(), "team");
    for (const [method, path, body] of routes) {
      expect(codeOf(await p.call(method, path, { body }))).toEqual({ status: 401, code: "unauthorized" });
      expect(codeOf(await p.call(method, path, { token: stranger, body }))).toEqual({
        status: 403,
        code: "developer_required",
      });
    }
    const dev = await p.developer();
    const create = (body: unknown) => p.call("POST", "/developers/me/payment-account", { token: dev.token, body });
    expect(codeOf(await create({ country: "Italy" }))).toEqual({ status: 422, code: "validation_failed" });
    expect(codeOf(await create({ country: "IT", publisher_id: newUserId() }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    expect(codeOf(await create("{not json"))).toEqual({ status: 400, code: "malformed_body" });
    const link = (body: unknown) =>
      p.call("POST", "/developers/me/payment-account/onboarding-link", { token: dev.token, body });
    const other = await link({ refresh_url: "https://evil.example/again", return_url: RETURN.success_url });
    expect(codeOf(other)).toEqual({ status: 422, code: "validation_failed" });
    expect(other.body.error.details).toEqual([{ path: "refresh_url", message: "this origin is not allowed" }]);
    expect(codeOf(await link({ refresh_url: "not a url", return_url: RETURN.success_url }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    // Valid, but the developer has no account yet.
    expect(codeOf(await link({ refresh_url: RETURN.success_url, return_url: RETURN.success_url }))).toEqual({
      status: 404,
      code: "not_found",
    });
    // Nothing of this reached Stripe.
    expect(
      p.fake.requestsTo("POST", "/v1/accounts").filter((each) => {
        const metadata = each.params.metadata as Record<string, string> | undefined;
        return metadata?.publisher_id === dev.userId;
      }),
    ).toEqual([]);
  });

  test("account and onboarding requests share the payment sessions budget: the sixth in a minute is 429", async () => {
    const dev = await p.developer();
    expect((await p.call("POST", "/developers/me/payment-account", { token: dev.token, body: {} })).status).toBe(201);
    const link = () =>
      p.call("POST", "/developers/me/payment-account/onboarding-link", {
        token: dev.token,
        body: { refresh_url: RETURN.success_url, return_url: RETURN.success_url },
      });
    for (let each = 0; each < 4; each++) expect((await link()).status).toBe(200);
    const refused = await link();
    expect(codeOf(refused)).toEqual({ status: 429, code: "rate_limited" });
    expect(refused.headers.get("ratelimit-policy")).toContain('"plugin-payment-sessions";q=5;w=60');
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    // Reading the account is not a Stripe session: only the service's own budget applies.
    expect((await p.call("GET", "/developers/me/payment-account", { token: dev.token })).status).toBe(200);
  });
});

describe("buying a one-off plugin", () => {
  test("checkout carries the platform fee to the publisher; paid, the plugin is installed with the grants given and offered", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const userId = newUserId();
    const token = await p.token(userId, "team");
    const unpaid = await p.install(token, id);
    expect(codeOf(unpaid)).toEqual({ status: 402, code: "payment_required" });
    expect(unpaid.body.error.message).toContain("POST /api/v1/plugins/checkout");
    expect(await p.offered(userId)).toEqual([]);

    const grants = { device_tools: ["task_list"], origins: [], data: ["profile"] };
    const started = await p.checkout(token, id, { grants });
    expect(started.status).toBe(200);
    expect(started.body).toEqual({
      session_id: expect.stringMatching(/^cs_/),
      url: expect.stringContaining("/c/pay/"),
      pricing: ONE_OFF,
      platform_fee_amount: 188,
      platform_fee_percent: 12.5,
    });
    const session = p.fake.sessions.get(started.body.session_id) as Record<string, unknown>;
    expect(session).toMatchObject({
      mode: "payment",
      client_reference_id: userId,
      success_url: RETURN.success_url,
      cancel_url: RETURN.cancel_url,
      amount_total: 1500,
      currency: "eur",
      payment_intent_data: {
        application_fee_amount: "188",
        transfer_data: { destination: publisher.accountId },
      },
      metadata: {
        kind: "plugin_purchase",
        user_id: userId,
        plugin_id: id,
        plugin_version: "1.0.0",
        pricing_model: "one_off",
        platform_fee_percent: "12.5",
        platform_fee_amount: "188",
      },
    });

    const heard = await listen(userId);
    const paid = p.fake.completePayment(started.body.session_id);
    expect(paid.applicationFee).toMatchObject({ amount: 188, account: publisher.accountId });
    expect(p.fake.transfers.get(String(paid.charge.transfer))).toMatchObject({
      amount: 1500,
      destination: publisher.accountId,
    });
    expect((await p.deliver(paid.event)).body).toEqual({ received: true, outcome: "processed" });

    expect(await listed(token)).toEqual([
      expect.objectContaining({ plugin_id: id, version: "1.0.0", grants: { ...grants }, available: true }),
    ]);
    expect(await p.offered(userId)).toEqual([id]);
    const [purchase] = await purchasesOf(userId);
    expect(purchase).toMatchObject({
      pluginId: id,
      version: "1.0.0",
      model: "one_off",
      amount: 1500,
      currency: "eur",
      platformFee: 188,
      paymentIntentId: paid.paymentIntent.id,
      subscriptionId: null,
      status: "active",
    });
    expect((await installOf(userId, id))?.entitlementId).toBe(purchase?.id as string);
    expect(await installCount(id)).toBe(1);
    expect(await heardAll(heard, 1)).toEqual([{ userId, pluginId: id, reason: "installed" }]);
    expect(codeOf(await p.checkout(token, id))).toEqual({ status: 409, code: "already_purchased" });

    // Bought for good: uninstalled and installed again, it needs no new payment.
    expect((await p.call("DELETE", `/installs/${id}`, { token })).status).toBe(204);
    expect(await p.offered(userId)).toEqual([]);
    expect((await p.install(token, id)).body).toMatchObject({ plugin_id: id, available: true });
    expect(await p.offered(userId)).toEqual([id]);
  });

  test("a full refund uninstalls it and the agent is no longer offered it; a partial one changes only the figures", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    await p.deliver(buyer.event);
    expect(await p.offered(buyer.userId)).toEqual([id]);
    const heard = await listen(buyer.userId);

    await p.stripe.refunds.create({ payment_intent: buyer.paymentIntent.id, amount: 500 });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await p.offered(buyer.userId)).toEqual([id]);
    expect((await purchasesOf(buyer.userId))[0]).toMatchObject({ status: "active", amountRefunded: 500 });

    await refundPluginPurchase(p.deps, buyer.paymentIntent.id);
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await p.offered(buyer.userId)).toEqual([]);
    expect(await listed(buyer.token)).toEqual([]);
    expect(await installCount(id)).toBe(0);
    expect((await purchasesOf(buyer.userId))[0]).toMatchObject({ status: "refunded", amountRefunded: 1500 });
    expect(await heardAll(heard, 1)).toEqual([{ userId: buyer.userId, pluginId: id, reason: "uninstalled" }]);
    // The full refund gave back the platform's share of it (125 of the fee of 188; the partial refund,
    // made without `refund_application_fee`, none) and reversed the publisher's transfer.
    expect(p.fake.applicationFees.get(String(buyer.charge.application_fee))).toMatchObject({ amount_refunded: 125 });
    expect(p.fake.transfers.get(String(buyer.charge.transfer))).toMatchObject({ amount_reversed: 1000 });
    expect(codeOf(await p.install(buyer.token, id))).toEqual({ status: 402, code: "payment_required" });
    // Refunded is not owned: it may be bought again, in a new session (not the one already paid).
    const again = await p.checkout(buyer.token, id);
    expect(again.status).toBe(200);
    expect(again.body.session_id).not.toBe(buyer.sessionId);
  });
});

describe("a monthly plugin", () => {
  test("a subscription installs it; the last failed renewal ends access, a payment resumes it, cancellation ends it for good", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const userId = newUserId();
    const token = await p.token(userId, "team");
    const started = await p.checkout(token, id);
    expect(started.body).toMatchObject({ pricing: MONTHLY, platform_fee_amount: null, platform_fee_percent: 12.5 });
    expect(p.fake.sessions.get(started.body.session_id)).toMatchObject({
      mode: "subscription",
      subscription_data: {
        application_fee_percent: "12.5",
        transfer_data: { destination: publisher.accountId },
        metadata: { kind: "plugin_purchase", user_id: userId, plugin_id: id, pricing_model: "monthly" },
      },
    });
    const { subscription, event } = p.fake.completeCheckout(started.body.session_id);
    expect((await p.deliver(event)).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([id]);
    expect(await purchaseBySubscription(subscription.id)).toMatchObject({
      userId,
      model: "monthly",
      amount: 499,
      platformFee: 62,
      status: "active",
    });

    // A renewal failing while Stripe retries changes nothing.
    const retrying = p.fake.failInvoicePayment(subscription.id);
    expect((await p.deliver(retrying.event)).body.outcome).toBe("ignored");
    expect((await p.deliver(p.lastEmitted("customer.subscription.updated"))).body.outcome).toBe("ignored");
    expect(await p.offered(userId)).toEqual([id]);

    // The last attempt failed: access ends, the install stays (unusable).
    const heard = await listen(userId);
    const final = p.fake.failInvoicePayment(subscription.id, { final: true });
    expect((await p.deliver(final.event)).body.outcome).toBe("processed");
    expect((await p.deliver(p.lastEmitted("customer.subscription.updated"))).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([]);
    expect(await listed(token)).toEqual([expect.objectContaining({ plugin_id: id, available: false })]);
    expect(await purchaseBySubscription(subscription.id)).toMatchObject({ status: "ended", endReason: "lapsed" });
    expect(await heardAll(heard, 1)).toEqual([{ userId, pluginId: id, reason: "removed" }]);

    // A resumption older than the lapse, delivered late, is ignored; a newer one brings it back.
    const lapsedAt = JSON.parse(final.event).created as number;
    const resumed = (created?: number) =>
      p.fake.event("customer.subscription.updated", p.fake.updateSubscription(subscription.id, { status: "active" }), {
        previousAttributes: { status: "unpaid" },
        ...(created === undefined ? {} : { created }),
      });
    expect((await p.deliver(resumed(lapsedAt - 60))).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([]);
    expect((await p.deliver(resumed())).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([id]);
    expect(await purchaseBySubscription(subscription.id)).toMatchObject({ status: "active", endReason: null });

    // Deleted: over for good, whatever comes after.
    await p.stripe.subscriptions.cancel(subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([]);
    expect(await purchaseBySubscription(subscription.id)).toMatchObject({ status: "ended", endReason: "canceled" });
    expect((await p.deliver(resumed())).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([]);

    // Bought again: the same install is paid for by the new purchase.
    const again = await p.checkout(token, id);
    expect(again.status).toBe(200);
    const renewed = p.fake.completeCheckout(again.body.session_id);
    expect(renewed.session.id).not.toBe(started.body.session_id);
    expect((await p.deliver(renewed.event)).body.outcome).toBe("processed");
    expect(await p.offered(userId)).toEqual([id]);
    expect(await installCount(id)).toBe(1);
    const current = await purchaseBySubscription(renewed.subscription.id);
    expect((await installOf(userId, id))?.entitlementId).toBe(current?.id as string);
  });

  test("uninstalling sets the subscription to end with the paid period; reinstalling before it ends renews it again", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    const updates = () =>
      p.fake.requestsTo("POST", `/v1/subscriptions/${buyer.subscription.id}`).map((request) => request.params);

    expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
    expect(updates()).toEqual([{ cancel_at_period_end: "true" }]);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({
      status: "active",
      cancel_at_period_end: true,
    });
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({
      status: "active",
      cancelAtPeriodEnd: true,
    });
    expect(await p.offered(buyer.userId)).toEqual([]);

    // Still paid for: reinstalling needs no payment, and undoes the cancellation so access goes on.
    expect((await p.install(buyer.token, id)).status).toBe(201);
    expect(updates()).toEqual([{ cancel_at_period_end: "true" }, { cancel_at_period_end: "false" }]);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({
      status: "active",
      cancel_at_period_end: false,
    });
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({
      status: "active",
      cancelAtPeriodEnd: false,
    });
    expect(await p.offered(buyer.userId)).toEqual([id]);
    // The next period is paid as ever.
    const renewal = p.fake.renewSubscription(buyer.subscription.id);
    expect((await p.deliver(renewal.paid)).body.outcome).toBe("processed");
    expect(await p.offered(buyer.userId)).toEqual([id]);

    // Uninstalled again, the subscription is set to end again; a reinstall already there asks Stripe nothing.
    expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
    expect(updates()).toHaveLength(3);
    expect(updates()[2]).toEqual({ cancel_at_period_end: "true" });
    expect((await p.install(buyer.token, id)).status).toBe(201);
    expect(codeOf(await p.install(buyer.token, id))).toEqual({ status: 409, code: "already_installed" });
    expect(updates()).toHaveLength(4);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ cancel_at_period_end: false });

    // Uninstalled for good: the period ends, Stripe deletes the subscription, and access ends.
    expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
    await p.stripe.subscriptions.cancel(buyer.subscription.id);
    await p.deliver(p.lastEmitted("customer.subscription.deleted"));
    expect(await p.offered(buyer.userId)).toEqual([]);
    expect(codeOf(await p.install(buyer.token, id))).toEqual({ status: 402, code: "payment_required" });
    expect(updates()).toHaveLength(5);
  });

  test("a reinstall Stripe cannot confirm is 503 and installs nothing; one the user may not make asks Stripe nothing", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY, { tiers: ["pro", "power", "team"] });
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
    const updates = () => p.fake.requestsTo("POST", `/v1/subscriptions/${buyer.subscription.id}`).length;
    expect(updates()).toBe(1);

    p.fake.unavailable = true;
    try {
      expect(codeOf(await p.install(buyer.token, id))).toEqual({ status: 503, code: "stripe_unavailable" });
    } finally {
      p.fake.unavailable = false;
    }
    expect(await installOf(buyer.userId, id)).toBeUndefined();
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({ cancelAtPeriodEnd: true });
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ cancel_at_period_end: true });

    // The same user on a tier the plugin is not for: refused before Stripe is asked.
    const freeToken = await p.token(buyer.userId, "free");
    const requests = updates();
    expect(codeOf(await p.install(freeToken, id))).toEqual({ status: 403, code: "tier_not_supported" });
    expect(updates()).toBe(requests);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ cancel_at_period_end: true });
    // Another user's purchase is not theirs to keep.
    expect(codeOf(await p.install(await p.token(newUserId(), "team"), id))).toEqual({
      status: 402,
      code: "payment_required",
    });
    expect(updates()).toBe(requests);

    // Stripe answering again, the reinstall goes through and the subscription renews.
    expect((await p.install(buyer.token, id)).status).toBe(201);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ cancel_at_period_end: false });
    expect(await p.offered(buyer.userId)).toEqual([id]);
  });

  test("a reinstall after Stripe ended the subscription, before its deletion arrived: installed, then unpaid when it does", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    expect((await p.call("DELETE", `/installs/${id}`, { token: buyer.token })).status).toBe(204);
    // The period ended in Stripe; its webhook is still on the way.
    const canceled = p.fake.updateSubscription(buyer.subscription.id, { status: "canceled" });
    expect((await p.install(buyer.token, id)).status).toBe(201);
    const refused = p.fake.requestsTo("POST", `/v1/subscriptions/${buyer.subscription.id}`).at(-1);
    expect(refused?.params).toEqual({ cancel_at_period_end: "false" });
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({ cancelAtPeriodEnd: true });
    await p.deliver(p.fake.event("customer.subscription.deleted", canceled));
    expect(await p.offered(buyer.userId)).toEqual([]);
    expect(await listed(buyer.token)).toEqual([expect.objectContaining({ plugin_id: id, available: false })]);
  });

  test("Stripe unreachable when uninstalling a monthly plugin: 503 and the install stays", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    p.fake.unavailable = true;
    try {
      expect(codeOf(await p.call("DELETE", `/installs/${id}`, { token: buyer.token }))).toEqual({
        status: 503,
        code: "stripe_unavailable",
      });
    } finally {
      p.fake.unavailable = false;
    }
    expect(await p.offered(buyer.userId)).toEqual([id]);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ cancel_at_period_end: false });
  });
});

describe("a subscription's events out of order", () => {
  /** What one buyer's purchase and install of `pluginId` came to, as the user and the publisher see them. */
  const stateOf = async (buyer: { userId: string; token: string; subscription: { id: string } }, pluginId: string) => {
    const purchase = await purchaseBySubscription(buyer.subscription.id);
    const install = await installOf(buyer.userId, pluginId);
    return {
      purchase: {
        status: purchase?.status as string | undefined,
        endReason: purchase?.endReason as string | null | undefined,
        amount: purchase?.amount,
      },
      install: install && { paidBy: install.entitlementId, grants: install.grantedDeviceTools },
      offered: await p.offered(buyer.userId),
    };
  };

  test("deleted before its checkout's completion arrives: the completion grants nothing, as in order", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    // In order: paid, then deleted.
    const first = await p.subscribedCheckout(id);
    expect((await p.deliver(first.event)).body.outcome).toBe("processed");
    await p.stripe.subscriptions.cancel(first.subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    // Out of order: Stripe delivers the deletion first.
    const second = await p.subscribedCheckout(id);
    await p.stripe.subscriptions.cancel(second.subscription.id);
    const heard = await listen(second.userId);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect(await purchasesOf(second.userId)).toEqual([]);
    expect((await p.deliver(second.event)).body.outcome).toBe("processed");

    const expected = {
      purchase: { status: "ended", endReason: "canceled", amount: 499 },
      install: { paidBy: null, grants: ["task_list"] },
      offered: [],
    };
    expect(await stateOf(first, id)).toEqual(expected);
    expect(await stateOf(second, id)).toEqual(expected);
    expect(await listed(second.token)).toEqual([expect.objectContaining({ plugin_id: id, available: false })]);
    expect(await installCount(id)).toBe(2);
    // Nothing the agent could use was ever announced to the second buyer's chat.
    await p.offered(second.userId);
    expect(heard).toEqual([]);
    // A redelivery of either changes nothing; buying again is a new purchase, which pays for the install.
    expect((await p.deliver(second.event)).body.outcome).toBe("duplicate");
    const again = await p.checkout(second.token, id);
    expect(again.status).toBe(200);
    expect((await p.deliver(p.fake.completeCheckout(again.body.session_id).event)).body.outcome).toBe("processed");
    expect(await p.offered(second.userId)).toEqual([id]);
    expect(await installCount(id)).toBe(2);
  });

  test("the last failed renewal before the completion: the purchase lapsed, and a later payment resumes it", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    const final = p.fake.failInvoicePayment(buyer.subscription.id, { final: true });
    expect((await p.deliver(final.event)).body.outcome).toBe("processed");
    expect((await p.deliver(p.lastEmitted("customer.subscription.updated"))).body.outcome).toBe("processed");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(await stateOf(buyer, id)).toEqual({
      purchase: { status: "ended", endReason: "lapsed", amount: 499 },
      install: { paidBy: null, grants: ["task_list"] },
      offered: [],
    });
    // Paid again: the newer resumption brings it back, the install paid for by the same purchase.
    p.fake.renewSubscription(buyer.subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.updated"))).body.outcome).toBe("processed");
    const purchase = await purchaseBySubscription(buyer.subscription.id);
    expect(await stateOf(buyer, id)).toEqual({
      purchase: { status: "active", endReason: null, amount: 499 },
      install: { paidBy: purchase?.id as string, grants: ["task_list"] },
      offered: [id],
    });
  });

  test("an update of the subscription older than its completion does not end it; a deletion of another one changes nothing", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    const other = await p.subscribedCheckout(id);
    const paidAt = JSON.parse(buyer.event).created as number;
    // A lapse Stripe dated before the payment cannot end what the payment started.
    const stale = p.fake.event(
      "customer.subscription.updated",
      { ...p.fake.subscriptions.get(buyer.subscription.id), status: "unpaid" },
      { previousAttributes: { status: "active" }, created: paidAt - 60 },
    );
    expect((await p.deliver(stale)).body.outcome).toBe("processed");
    await p.stripe.subscriptions.cancel(other.subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(await stateOf(buyer, id)).toMatchObject({ purchase: { status: "active", endReason: null }, offered: [id] });
  });
});

describe("renewals", () => {
  test("each paid renewal is counted once with its fee; the first invoice is the checkout's own payment", async () => {
    const seller = await p.payablePublisher();
    const id = await p.paidPlugin(seller, MONTHLY, { name: "Renewing" });
    const buyer = await p.subscribedCheckout(id);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    // Stripe's invoice.paid of the first invoice says nothing new.
    expect((await p.deliver(p.lastEmitted("invoice.paid"))).body.outcome).toBe("ignored");
    const totals = async () =>
      (await p.call("GET", "/developers/me/sales", { token: seller.token })).body.items[0]?.totals;
    const renewed = async () => {
      const text = await p.server.platform.metrics.registry.getSingleMetricAsString("plugins_purchase_events_total");
      return Number(/plugins_purchase_events_total\{event="renewed"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await renewed();

    for (let month = 0; month < 2; month++) {
      const renewal = p.fake.renewSubscription(buyer.subscription.id);
      expect(renewal.invoice).toMatchObject({ billing_reason: "subscription_cycle", amount_paid: 499 });
      // Both events of one invoice, each possibly delivered again: one renewal.
      expect((await p.deliver(renewal.paid)).body.outcome).toBe("processed");
      expect((await p.deliver(renewal.succeeded)).body.outcome).toBe("processed");
      expect((await p.deliver(renewal.paid)).body.outcome).toBe("duplicate");
    }
    expect(await totals()).toEqual([
      {
        currency: "eur",
        purchases: 1,
        renewals: 2,
        gross: 3 * 499,
        platform_fees: 3 * 62,
        refunds: { count: 0, amount: 0 },
        active: 1,
      },
    ]);
    expect((await renewed()) - before).toBe(2);
    // The platform's share is what Stripe took of each renewal's charge.
    const fees = [...p.fake.applicationFees.values()].filter((fee) => fee.account === seller.accountId);
    expect(fees.map((fee) => fee.amount)).toEqual([62, 62, 62]);

    // A renewal of billing's tier subscriptions, or of a subscription no purchase records, counts nothing.
    const tier = p.fake.createSubscription({ customer: "cus_tier", price: "price_pro_monthly" });
    expect((await p.deliver(p.fake.event("invoice.paid", p.fake.invoice(tier.id, "paid")))).body.outcome).toBe(
      "ignored",
    );
    const unknown = p.fake.createSubscription({
      customer: "cus_other",
      price: "price_unknown",
      metadata: p.fake.subscriptions.get(buyer.subscription.id)?.metadata as Record<string, string>,
    });
    expect((await p.deliver(p.fake.event("invoice.paid", p.fake.invoice(unknown.id, "paid")))).body.outcome).toBe(
      "processed",
    );
    expect((await totals())?.[0]).toMatchObject({ renewals: 2, gross: 3 * 499 });
  });
});

describe("account deletion", () => {
  test("cancels the user's plugin subscriptions at once; their purchases stay in the publisher's figures without them", async () => {
    const monthly = await p.paidPlugin(publisher, MONTHLY);
    const oneOff = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.subscribedCheckout(monthly);
    await p.deliver(buyer.event);
    const started = await p.checkout(buyer.token, oneOff);
    await p.deliver(p.fake.completePayment(started.body.session_id).event);
    expect((await p.offered(buyer.userId)).sort()).toEqual([monthly, oneOff].sort());

    await publishUserDeleted(p.server.platform, { userId: buyer.userId, deletedAt: Date.now() });
    const bought = await eventually(
      () => purchasesOf(buyer.userId),
      (rows) => rows.length === 0,
    );
    expect(bought).toEqual([]);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
    expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`)).toHaveLength(1);
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({
      userId: null,
      customerId: null,
      status: "ended",
      endReason: "canceled",
    });
    const kept = await db().select().from(purchases).where(eq(purchases.pluginId, oneOff));
    expect(kept).toEqual([expect.objectContaining({ userId: null, status: "active", amount: 1500 })]);
    expect(await db().select().from(installs).where(eq(installs.userId, buyer.userId))).toEqual([]);
    // Stripe's word of the cancellation arrives afterwards and changes nothing.
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
  });
});

describe("checkout: who may buy what", () => {
  test("no token 401; a token buys for its own user only, and a body naming a user is refused", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    expect(codeOf(await p.checkout(undefined, id))).toEqual({ status: 401, code: "unauthorized" });
    const alice = newUserId();
    const bob = newUserId();
    const bobToken = await p.token(bob, "team");
    expect(codeOf(await p.checkout(bobToken, id, { user_id: alice }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    const started = await p.checkout(bobToken, id);
    expect(p.fake.sessions.get(started.body.session_id)).toMatchObject({
      client_reference_id: bob,
      metadata: { user_id: bob },
    });
    await p.deliver(p.fake.completePayment(started.body.session_id).event);
    expect(await p.offered(bob)).toEqual([id]);
    expect(await p.offered(alice)).toEqual([]);
    expect(await purchasesOf(alice)).toEqual([]);
    expect(await listed(await p.token(alice, "team"))).toEqual([]);
  });

  test("a tier the plugin does not list is 403; free, unknown, suspended, draft and unpayable plugins are refused", async () => {
    const fresh = async (tier: "free" | "pro" | "team" = "team") => p.token(newUserId(), tier);
    const pro = await p.paidPlugin(publisher, ONE_OFF, { tiers: ["pro", "power", "team"] });
    expect(codeOf(await p.checkout(await fresh("free"), pro))).toEqual({ status: 403, code: "tier_not_supported" });
    expect((await p.checkout(await fresh("pro"), pro)).status).toBe(200);

    const free = await p.publishLive(publisher, manifest());
    expect(codeOf(await p.checkout(await fresh(), free))).toEqual({ status: 409, code: "plugin_is_free" });
    expect(codeOf(await p.checkout(await fresh(), crypto.randomUUID()))).toEqual({ status: 404, code: "not_found" });
    const suspended = await p.paidPlugin(publisher, ONE_OFF);
    await p.call("POST", `/admin/plugins/${suspended}/suspend`, {
      token: await p.adminToken(),
      body: { reason: "investigating" },
    });
    expect(codeOf(await p.checkout(await fresh(), suspended))).toEqual({ status: 404, code: "not_found" });
    const draft = (await p.create(publisher, manifest({ pricing: ONE_OFF }))).body.id as string;
    expect(codeOf(await p.checkout(await fresh(), draft))).toEqual({ status: 404, code: "not_found" });

    // A publisher with no Stripe account, and one Stripe has not verified.
    const noAccount = await p.paidPlugin(await p.developer(), ONE_OFF);
    expect(codeOf(await p.checkout(await fresh(), noAccount))).toEqual({ status: 409, code: "publisher_not_payable" });
    const unverified = await p.developer();
    const account = await p.call("POST", "/developers/me/payment-account", { token: unverified.token, body: {} });
    p.fake.completeOnboarding(account.body.account_id, { verified: false });
    const pending = await p.paidPlugin(unverified, ONE_OFF);
    expect(codeOf(await p.checkout(await fresh(), pending))).toEqual({ status: 409, code: "publisher_not_payable" });
  });

  test("malformed bodies are 4xx with a code, and none reaches Stripe", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const sessions = () => p.fake.requestsTo("POST", "/v1/checkout/sessions").length;
    const before = sessions();
    const send = async (body: unknown, type?: string) =>
      p.call("POST", "/checkout", {
        token: await p.token(newUserId(), "team"),
        body,
        ...(type ? { headers: { "content-type": type } } : {}),
      });
    const valid = { plugin_id: id, grants: p.allGrants, ...RETURN };
    const cases: Array<[unknown, number, string, string?]> = [
      [{ plugin_id: id, ...RETURN }, 422, "validation_failed"],
      [{ ...valid, plugin_id: "not-a-uuid" }, 422, "validation_failed"],
      [{ ...valid, success_url: "not a url" }, 422, "validation_failed"],
      [{ ...valid, success_url: "https://evil.example/bought" }, 422, "validation_failed"],
      [{ ...valid, cancel_url: "javascript:alert(1)" }, 422, "validation_failed"],
      [
        { ...valid, grants: { device_tools: ["fs_read_file"], origins: [], data: [] } },
        422,
        "permission_not_requested",
      ],
      [{ ...valid, grants: { device_tools: "all" } }, 422, "validation_failed"],
      ["{not json", 400, "malformed_body"],
      [[], 422, "validation_failed"],
      [JSON.stringify(valid), 415, "unsupported_media_type", "text/plain"],
    ];
    for (const [body, status, code, type] of cases) {
      expect({ body, ...codeOf(await send(body, type)) }).toEqual({ body, status, code });
    }
    const origin = await send({ ...valid, success_url: "https://evil.example/bought" });
    expect(origin.body.error.details).toEqual([{ path: "success_url", message: "this origin is not allowed" }]);
    expect(sessions()).toBe(before);
  });

  test("checkouts share the payment sessions budget: the sixth in a minute is 429", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const token = await p.token(newUserId(), "team");
    const answers = [];
    for (let each = 0; each < 6; each++) answers.push(await p.checkout(token, id));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200, 429]);
    // The same request again within minutes is the same Stripe session (a double click).
    expect(new Set(answers.slice(0, 5).map((answer) => answer.body.session_id)).size).toBe(1);
    expect(codeOf(answers[5] as (typeof answers)[number])).toEqual({ status: 429, code: "rate_limited" });
    expect(answers[5]?.headers.get("ratelimit-policy")).toContain('"plugin-payment-sessions";q=5;w=60');
  });
});

describe("the webhook", () => {
  test("the same delivery twice is applied once; forged, missing or tampered signatures are 400 and change nothing", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    expect(codeOf(await p.deliver(buyer.event, "whsec_forger"))).toEqual({ status: 400, code: "invalid_signature" });
    expect(codeOf(await p.call("POST", "/payments/webhook", { body: buyer.event }))).toEqual({
      status: 400,
      code: "invalid_signature",
    });
    const signature = await signWebhook(buyer.event, WEBHOOK_SECRET);
    const tampered = buyer.event.replace(`"amount_total": 1500`, `"amount_total": 1`);
    expect(tampered).not.toBe(buyer.event);
    expect(
      codeOf(await p.call("POST", "/payments/webhook", { body: tampered, headers: { "stripe-signature": signature } })),
    ).toEqual({ status: 400, code: "invalid_signature" });
    expect(await purchasesOf(buyer.userId)).toEqual([]);
    expect(await p.offered(buyer.userId)).toEqual([]);

    expect((await p.deliver(buyer.event)).body).toEqual({ received: true, outcome: "processed" });
    expect((await p.deliver(buyer.event)).body).toEqual({ received: true, outcome: "duplicate" });
    expect(await purchasesOf(buyer.userId)).toHaveLength(1);
    expect(await installCount(id)).toBe(1);
  });

  test("an event of nothing ours is acknowledged and ignored; a payment not matching the price is honoured in nothing", async () => {
    const unrelated = p.fake.event("customer.created", { id: "cus_x", object: "customer" });
    expect((await p.deliver(unrelated)).body).toEqual({ received: true, outcome: "ignored" });

    const id = await p.paidPlugin(publisher, ONE_OFF);
    const userId = newUserId();
    const cheap = p.fake.event("checkout.session.completed", {
      id: `cs_test_${crypto.randomUUID().replaceAll("-", "")}`,
      object: "checkout.session",
      mode: "payment",
      status: "complete",
      payment_status: "paid",
      amount_total: 1,
      currency: "eur",
      payment_intent: `pi_${crypto.randomUUID().replaceAll("-", "")}`,
      metadata: {
        kind: "plugin_purchase",
        user_id: userId,
        plugin_id: id,
        plugin_version: "1.0.0",
        pricing_model: "one_off",
        platform_fee_percent: "12.5",
        platform_fee_amount: "0",
      },
    });
    expect((await p.deliver(cheap)).body).toEqual({ received: true, outcome: "processed" });
    expect(await purchasesOf(userId)).toEqual([]);
    expect(await p.offered(userId)).toEqual([]);
    const refused = await p.server.platform.metrics.registry.getSingleMetricAsString("plugins_purchase_events_total");
    expect(refused).toContain('plugins_purchase_events_total{event="refused"} 1');
  });
});

describe("publishers see their sales", () => {
  test("per plugin: purchases, renewals, gross, platform fees, refunds; paginated; nobody else sees them", async () => {
    const seller = await p.payablePublisher();
    const tool = await p.paidPlugin(seller, ONE_OFF, { name: "Tool" });
    const service = await p.paidPlugin(seller, MONTHLY, { name: "Service" });
    const first = await p.paidCheckout(tool);
    const second = await p.paidCheckout(tool);
    await p.deliver(first.event);
    await p.deliver(second.event);
    await refundPluginPurchase(p.deps, second.paymentIntent.id);
    await p.deliver(p.lastEmitted("charge.refunded"));
    const subscriber = await p.subscribedCheckout(service);
    await p.deliver(subscriber.event);
    // A month later: the renewal counts with its fee (the first invoice is the purchase itself).
    await p.deliver(p.lastEmitted("invoice.paid"));
    await p.deliver(p.fake.renewSubscription(subscriber.subscription.id).paid);

    const sales = (token: string, query = "") => p.call("GET", `/developers/me/sales${query}`, { token });
    const page1 = await sales(seller.token, "?limit=1");
    expect(page1.status).toBe(200);
    // Newest plugin first.
    expect(page1.body.items).toEqual([
      {
        plugin_id: service,
        slug: expect.any(String),
        name: "Service",
        totals: [
          {
            currency: "eur",
            purchases: 1,
            renewals: 1,
            gross: 998,
            platform_fees: 124,
            refunds: { count: 0, amount: 0 },
            active: 1,
          },
        ],
      },
    ]);
    const page2 = await sales(seller.token, `?limit=1&cursor=${page1.body.next_cursor}`);
    expect(page2.body).toEqual({
      items: [
        {
          plugin_id: tool,
          slug: expect.any(String),
          name: "Tool",
          totals: [
            {
              currency: "eur",
              purchases: 2,
              renewals: 0,
              gross: 3000,
              platform_fees: 376,
              refunds: { count: 1, amount: 1500 },
              active: 1,
            },
          ],
        },
      ],
      next_cursor: null,
    });
    expect((await sales(seller.token)).body.items.map((item: { plugin_id: string }) => item.plugin_id)).toEqual([
      service,
      tool,
    ]);

    // Another developer, even one selling plugins, never sees them.
    const otherItems = (await sales(publisher.token, "?limit=50")).body.items as Array<{ plugin_id: string }>;
    expect(otherItems.map((item) => item.plugin_id)).not.toContain(tool);
    expect((await sales((await p.developer()).token)).body).toEqual({ items: [], next_cursor: null });
    expect(codeOf(await sales(await p.token(newUserId(), "team")))).toEqual({
      status: 403,
      code: "developer_required",
    });
    expect(codeOf(await p.call("GET", "/developers/me/sales"))).toEqual({ status: 401, code: "unauthorized" });
    expect(codeOf(await sales(seller.token, "?cursor=bm9wZQ"))).toEqual({ status: 422, code: "invalid_cursor" });
    expect(codeOf(await sales(seller.token, "?limit=0"))).toEqual({ status: 422, code: "validation_failed" });
    expect(codeOf(await sales(seller.token, "?plugin_id=x"))).toEqual({ status: 422, code: "validation_failed" });
  });
});

describe("a refund delivered before its payment's completion", () => {
  /** What one buyer's one-off purchase came to, as the user and the publisher see it. */
  const stateOf = async (buyer: { userId: string; token: string; paymentIntent: { id: string } }, pluginId: string) => {
    const [purchase] = await db().select().from(purchases).where(eq(purchases.paymentIntentId, buyer.paymentIntent.id));
    const install = await installOf(buyer.userId, pluginId);
    return {
      purchase: purchase && { userId: purchase.userId, status: purchase.status, refunded: purchase.amountRefunded },
      install: install ? (install.entitlementId === purchase?.id ? "paid" : "unpaid") : "none",
      listed: await listed(buyer.token),
      offered: await p.offered(buyer.userId),
    };
  };

  test("a full refund first: the completion records the purchase refunded and installs nothing, as in order", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    // In order: paid (installed), then refunded (uninstalled).
    const first = await p.paidCheckout(id);
    expect((await p.deliver(first.event)).body.outcome).toBe("processed");
    await refundPluginPurchase(p.deps, first.paymentIntent.id);
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    // Out of order: Stripe delivers the refund first.
    const second = await p.paidCheckout(id);
    await refundPluginPurchase(p.deps, second.paymentIntent.id);
    const heard = await listen(second.userId);
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await purchasesOf(second.userId)).toEqual([]);
    expect((await p.deliver(second.event)).body.outcome).toBe("processed");

    const expected = (userId: string) => ({
      purchase: { userId, status: "refunded" as const, refunded: 1500 },
      install: "none",
      listed: [],
      offered: [],
    });
    expect(await stateOf(first, id)).toEqual(expected(first.userId));
    expect(await stateOf(second, id)).toEqual(expected(second.userId));
    expect(await installOf(second.userId, id)).toBeUndefined();
    expect(await installCount(id)).toBe(0);
    // Nothing the agent could use was ever announced to the second buyer's chat.
    await p.offered(second.userId);
    expect(heard).toEqual([]);
    // A redelivery changes nothing; the refunded plugin is not the buyer's, and may be bought again.
    expect((await p.deliver(second.event)).body.outcome).toBe("duplicate");
    expect(codeOf(await p.install(second.token, id))).toEqual({ status: 402, code: "payment_required" });
    const again = await p.checkout(second.token, id);
    expect(again.status).toBe(200);
    expect((await p.deliver(p.fake.completePayment(again.body.session_id).event)).body.outcome).toBe("processed");
    expect(await p.offered(second.userId)).toEqual([id]);
    expect(await installCount(id)).toBe(1);
  });

  test("a partial refund first is kept on the purchase, which pays for the install; the rest refunded later uninstalls", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    await p.stripe.refunds.create({ payment_intent: buyer.paymentIntent.id, amount: 400 });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(await stateOf(buyer, id)).toEqual({
      purchase: { userId: buyer.userId, status: "active", refunded: 400 },
      install: "paid",
      listed: [expect.objectContaining({ plugin_id: id, available: true })],
      offered: [id],
    });
    // An older delivery of the partial refund, after the completion, takes nothing back.
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("duplicate");
    await refundPluginPurchase(p.deps, buyer.paymentIntent.id);
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await stateOf(buyer, id)).toEqual({
      purchase: { userId: buyer.userId, status: "refunded", refunded: 1500 },
      install: "none",
      listed: [],
      offered: [],
    });
  });
});

describe("a payment completed after its buyer's account was deleted", () => {
  const erasedRow = async (userId: string) =>
    (
      await db()
        .select()
        .from(erasedUsers)
        .where(eq(erasedUsers.userIdSha256, erasedUserKey(userId)))
    )[0];
  /** The user's erasure through the `user_deleted` event, as auth sends it; resolves once it is committed. */
  const deleteAccount = async (userId: string) => {
    await publishUserDeleted(p.server.platform, { userId, deletedAt: Date.now() });
    await eventually(
      () => erasedRow(userId),
      (row) => row !== undefined,
    );
  };

  test("one-off: refunded in full through Stripe, nothing recorded for the user, nothing installed", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    await deleteAccount(buyer.userId);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");

    expect(await purchasesOf(buyer.userId)).toEqual([]);
    expect(await installOf(buyer.userId, id)).toBeUndefined();
    expect(await installCount(id)).toBe(0);
    expect(await p.offered(buyer.userId)).toEqual([]);
    // What the service keeps of the erased user is a digest of the id, never the id.
    expect(JSON.stringify(await db().select().from(erasedUsers))).not.toContain(buyer.userId);
    const refunds = p.fake.requestsTo("POST", "/v1/refunds").filter((each) => {
      return each.params.payment_intent === buyer.paymentIntent.id;
    });
    expect(refunds).toEqual([
      expect.objectContaining({
        params: expect.objectContaining({ refund_application_fee: "true", reverse_transfer: "true" }),
        idempotencyKey: `plugin-refund:${buyer.paymentIntent.id}`,
      }),
    ]);
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: true, amount_refunded: 1500 });
    expect(p.fake.transfers.get(String(buyer.charge.transfer))).toMatchObject({ reversed: true });
    // The sale stays in the publisher's figures as an erased buyer's does: no user, no customer, refunded.
    const [kept] = await db().select().from(purchases).where(eq(purchases.paymentIntentId, buyer.paymentIntent.id));
    expect(kept).toMatchObject({ userId: null, customerId: null, status: "refunded", amountRefunded: 1500 });
    // The grants of that checkout are gone with the rest.
    expect(await db().select().from(checkoutGrants).where(eq(checkoutGrants.sessionId, buyer.sessionId))).toEqual([]);

    // A redelivery asks Stripe nothing more; Stripe's refund event changes nothing.
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(
      p.fake.requestsTo("POST", "/v1/refunds").filter((each) => each.params.payment_intent === buyer.paymentIntent.id),
    ).toHaveLength(1);
    expect(await purchasesOf(buyer.userId)).toEqual([]);
  });

  test("monthly: the subscription is cancelled at once, nothing recorded for the user, nothing installed", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await deleteAccount(buyer.userId);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");

    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
    expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`)).toEqual([
      expect.objectContaining({ idempotencyKey: `plugin-cancel:${buyer.subscription.id}` }),
    ]);
    expect(await purchasesOf(buyer.userId)).toEqual([]);
    expect(await installOf(buyer.userId, id)).toBeUndefined();
    expect(await p.offered(buyer.userId)).toEqual([]);
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({
      userId: null,
      customerId: null,
      status: "ended",
      endReason: "canceled",
    });
    const [state] = await db()
      .select()
      .from(subscriptionStates)
      .where(eq(subscriptionStates.subscriptionId, buyer.subscription.id));
    expect(state?.state).toBe("canceled");
    // Stripe's deletion event and a redelivery change nothing, and ask Stripe nothing more.
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`)).toHaveLength(1);
  });

  test("what was given back is logged with the event, the user, the plugin and the payment", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    await deleteAccount(buyer.userId);
    // The service's own webhook verb, on a context whose log lines are kept.
    const captured = captureLogger();
    const ctx = createPluginsContext({ ...p.server.platform, logger: captured.logger });
    const signature = await signWebhook(buyer.event, WEBHOOK_SECRET);
    expect(await receivePaymentWebhook({ ctx, input: { payload: buyer.event, signature } })).toEqual({
      received: true,
      outcome: "processed",
    });
    expect(captured.lines).toContainEqual(
      expect.objectContaining({
        msg: "a plugin payment made after its buyer's account was deleted: refunded",
        event: JSON.parse(buyer.event).id,
        user_id: buyer.userId,
        plugin_id: id,
        payment_intent: buyer.paymentIntent.id,
      }),
    );
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: true });
  });

  test("Stripe unreachable: 503 and nothing recorded; Stripe's redelivery gives the payment back", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    await deleteAccount(buyer.userId);
    p.fake.unavailable = true;
    try {
      expect(codeOf(await p.deliver(buyer.event))).toEqual({ status: 503, code: "stripe_unavailable" });
    } finally {
      p.fake.unavailable = false;
    }
    expect(await db().select().from(purchases).where(eq(purchases.paymentIntentId, buyer.paymentIntent.id))).toEqual(
      [],
    );
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: false });
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: true });
    expect(await purchasesOf(buyer.userId)).toEqual([]);
    expect(await installOf(buyer.userId, id)).toBeUndefined();
  });
});

describe("a deleted developer's Stripe account", () => {
  const developerRow = async (userId: string) =>
    (await db().select().from(developers).where(eq(developers.userId, userId)))[0];

  test("is deleted with their data; erasing again, or an account Stripe no longer has, is fine", async () => {
    const dev = await p.payablePublisher();
    await publishUserDeleted(p.server.platform, { userId: dev.userId, deletedAt: Date.now() });
    await eventually(
      () => developerRow(dev.userId),
      (row) => row === undefined,
    );
    expect(p.fake.accounts.has(dev.accountId)).toBe(false);
    expect(p.fake.requestsTo("DELETE", `/v1/accounts/${dev.accountId}`)).toHaveLength(1);
    // Again (a redelivery): nothing left to delete, Stripe is not asked.
    await p.erase(dev.userId);
    expect(p.fake.requestsTo("DELETE", `/v1/accounts/${dev.accountId}`)).toHaveLength(1);

    // Deleted in Stripe already (a run whose commit failed, or by Stripe's support): counts as done.
    const gone = await p.payablePublisher();
    p.fake.accounts.delete(gone.accountId);
    await p.erase(gone.userId);
    expect(await developerRow(gone.userId)).toBeUndefined();
    expect(p.fake.requestsTo("DELETE", `/v1/accounts/${gone.accountId}`)).toHaveLength(1);
  });

  test("Stripe unreachable: the erasure throws (the event comes again) and keeps everything; it finishes once Stripe answers", async () => {
    const dev = await p.payablePublisher();
    const id = await p.paidPlugin(dev, ONE_OFF);
    const failed = async () => {
      const text = await p.server.platform.metrics.registry.getSingleMetricAsString("user_data_events_total");
      return Number(/user_data_events_total\{[^}]*kind="erase"[^}]*outcome="failed"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await failed();
    p.fake.unavailable = true;
    try {
      // Through the event, as auth sends it: the consumer's handler throws and leaves it pending.
      await publishUserDeleted(p.server.platform, { userId: dev.userId, deletedAt: Date.now() });
      await eventually(failed, (n) => n > before);
      await expect(p.erase(dev.userId)).rejects.toThrow();
    } finally {
      p.fake.unavailable = false;
    }
    expect(await developerRow(dev.userId)).toMatchObject({ stripeAccountId: dev.accountId });
    expect(await db().select().from(pluginRows).where(eq(pluginRows.id, id))).toHaveLength(1);
    expect(
      await db()
        .select()
        .from(erasedUsers)
        .where(eq(erasedUsers.userIdSha256, erasedUserKey(dev.userId))),
    ).toEqual([]);
    expect(p.fake.accounts.has(dev.accountId)).toBe(true);

    await p.erase(dev.userId);
    expect(p.fake.accounts.has(dev.accountId)).toBe(false);
    expect(await developerRow(dev.userId)).toBeUndefined();
    expect(await db().select().from(pluginRows).where(eq(pluginRows.id, id))).toEqual([]);
  });
});

describe("a deleted buyer's Stripe customers", () => {
  /** A one-off bought by `token` whose Checkout made a Stripe customer (Stripe may, rather than a guest). */
  const oneOffWithCustomer = async (token: string, pluginId: string) => {
    const started = await p.checkout(token, pluginId);
    const customer = await p.stripe.customers.create({ email: "buyer@adiuva.test" });
    Object.assign(p.fake.sessions.get(started.body.session_id) ?? {}, { customer: customer.id });
    expect((await p.deliver(p.fake.completePayment(started.body.session_id).event)).body.outcome).toBe("processed");
    return customer.id;
  };
  const customerDeletions = (customerId: string) => p.fake.requestsTo("DELETE", `/v1/customers/${customerId}`);

  test("each one their purchases made is deleted with their data, nobody else's; erasing again, or one Stripe no longer has, is fine", async () => {
    const monthly = await p.paidPlugin(publisher, MONTHLY);
    const oneOff = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.subscribedCheckout(monthly);
    await p.deliver(buyer.event);
    const subscriber = String(buyer.subscription.customer);
    const payer = await oneOffWithCustomer(buyer.token, oneOff);
    expect((await purchasesOf(buyer.userId)).map((row) => row.customerId).sort()).toEqual([subscriber, payer].sort());
    const other = await p.subscribedCheckout(monthly);
    await p.deliver(other.event);

    await publishUserDeleted(p.server.platform, { userId: buyer.userId, deletedAt: Date.now() });
    await eventually(
      () => purchasesOf(buyer.userId),
      (rows) => rows.length === 0,
    );
    expect(p.fake.customers.has(subscriber)).toBe(false);
    expect(p.fake.customers.has(payer)).toBe(false);
    expect(customerDeletions(subscriber)).toHaveLength(1);
    expect(customerDeletions(payer)).toHaveLength(1);
    // Another subscriber of the same plugin keeps theirs.
    expect(p.fake.customers.has(String(other.subscription.customer))).toBe(true);
    expect(await db().select().from(purchases).where(eq(purchases.customerId, subscriber))).toEqual([]);

    // Again (a redelivery): no customer left to delete, Stripe is not asked.
    await p.erase(buyer.userId);
    expect(customerDeletions(subscriber)).toHaveLength(1);
    expect(customerDeletions(payer)).toHaveLength(1);

    // Deleted in Stripe already (a run whose commit failed, or by Stripe's support): counts as done.
    const gone = await p.subscribedCheckout(monthly);
    await p.deliver(gone.event);
    p.fake.customers.delete(String(gone.subscription.customer));
    await p.erase(gone.userId);
    expect(await purchasesOf(gone.userId)).toEqual([]);
    expect(customerDeletions(String(gone.subscription.customer))).toHaveLength(1);
  });

  test("a developer's erasure deletes the customers the purchases of their plugins made; the buyers' others stay", async () => {
    const dev = await p.payablePublisher();
    const theirs = await p.paidPlugin(dev, MONTHLY);
    const theirOneOff = await p.paidPlugin(dev, ONE_OFF);
    const elsewhere = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(theirs);
    await p.deliver(buyer.event);
    const payer = await oneOffWithCustomer(buyer.token, theirOneOff);
    const started = await p.checkout(buyer.token, elsewhere);
    const kept = p.fake.completeCheckout(started.body.session_id as string);
    await p.deliver(kept.event);

    await p.erase(dev.userId);
    // The cascade took the purchases of the developer's plugins: nothing here names those customers any more.
    expect((await purchasesOf(buyer.userId)).map((row) => row.pluginId)).toEqual([elsewhere]);
    expect(customerDeletions(String(buyer.subscription.customer))).toHaveLength(1);
    expect(customerDeletions(payer)).toHaveLength(1);
    expect(p.fake.customers.has(String(buyer.subscription.customer))).toBe(false);
    expect(p.fake.customers.has(payer)).toBe(false);
    expect(p.fake.customers.has(String(kept.subscription.customer))).toBe(true);
  });

  test("Stripe unreachable: the erasure throws (the event comes again) and keeps the customer; it finishes once Stripe answers", async () => {
    const monthly = await p.paidPlugin(publisher, MONTHLY);
    // Subscribed, then cancelled and ended: only the customer is left in Stripe for the erasure.
    const buyer = await p.subscribedCheckout(monthly);
    await p.deliver(buyer.event);
    await p.stripe.subscriptions.cancel(buyer.subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    const customerId = String(buyer.subscription.customer);
    const failed = async () => {
      const text = await p.server.platform.metrics.registry.getSingleMetricAsString("user_data_events_total");
      return Number(/user_data_events_total\{[^}]*kind="erase"[^}]*outcome="failed"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await failed();
    p.fake.unavailable = true;
    try {
      // Through the event, as auth sends it: the consumer's handler throws and leaves it pending.
      await publishUserDeleted(p.server.platform, { userId: buyer.userId, deletedAt: Date.now() });
      await eventually(failed, (n) => n > before);
      await expect(p.erase(buyer.userId)).rejects.toThrow();
    } finally {
      p.fake.unavailable = false;
    }
    expect(p.fake.customers.has(customerId)).toBe(true);
    expect(await purchasesOf(buyer.userId)).toEqual([expect.objectContaining({ customerId, status: "ended" })]);
    expect(
      await db()
        .select()
        .from(erasedUsers)
        .where(eq(erasedUsers.userIdSha256, erasedUserKey(buyer.userId))),
    ).toEqual([]);

    await p.erase(buyer.userId);
    expect(p.fake.customers.has(customerId)).toBe(false);
    expect(await purchasesOf(buyer.userId)).toEqual([]);
  });

  test("a payment completed after the erasure: the customer its Checkout made is deleted with the subscription", async () => {
    const monthly = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(monthly);
    await p.erase(buyer.userId);
    const customerId = String(buyer.subscription.customer);
    p.fake.unavailable = true;
    try {
      expect(codeOf(await p.deliver(buyer.event))).toEqual({ status: 503, code: "stripe_unavailable" });
    } finally {
      p.fake.unavailable = false;
    }
    expect(p.fake.customers.has(customerId)).toBe(true);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(p.fake.customers.has(customerId)).toBe(false);
    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect(customerDeletions(customerId)).toHaveLength(1);
  });
});

describe("refunds of renewals", () => {
  test("count in the publisher's refunds, once per payment, whether they arrive after the renewal or before it", async () => {
    const seller = await p.payablePublisher();
    const id = await p.paidPlugin(seller, MONTHLY, { name: "Refunded monthly" });
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    const totals = async () =>
      (await p.call("GET", "/developers/me/sales", { token: seller.token })).body.items[0]?.totals[0];
    const lookups = () => p.fake.requestsTo("GET", "/v1/invoice_payments").length;

    const first = p.fake.renewSubscription(buyer.subscription.id);
    expect((await p.deliver(first.paid)).body.outcome).toBe("processed");
    const firstPayment = first.paymentIntent?.id as string;
    const asked = lookups();
    await p.stripe.refunds.create({ payment_intent: firstPayment, amount: 100 });
    const partial = p.lastEmitted("charge.refunded");
    expect((await p.deliver(partial)).body.outcome).toBe("processed");
    expect(await totals()).toMatchObject({ renewals: 1, gross: 998, refunds: { count: 1, amount: 100 } });
    // The same event again, and an older one delivered late, count nothing more.
    expect((await p.deliver(partial)).body.outcome).toBe("duplicate");
    await p.stripe.refunds.create({ payment_intent: firstPayment });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await totals()).toMatchObject({ refunds: { count: 1, amount: 499 } });
    expect(
      (await p.deliver(partial.replace(/"id": "evt_[^"]+"/, `"id": "evt_late_${crypto.randomUUID()}"`))).body.outcome,
    ).toBe("processed");
    expect(await totals()).toMatchObject({ refunds: { count: 1, amount: 499 } });
    // Stripe was asked once which invoice the payment paid; the later refunds knew it.
    expect(lookups() - asked).toBe(1);

    // The next month's refund delivered before its renewal's invoice.paid: counted once the renewal is.
    const second = p.fake.renewSubscription(buyer.subscription.id);
    await p.stripe.refunds.create({ payment_intent: second.paymentIntent?.id as string });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await totals()).toMatchObject({ renewals: 1, refunds: { count: 1, amount: 499 } });
    expect((await p.deliver(second.succeeded)).body.outcome).toBe("processed");
    expect(await totals()).toEqual({
      currency: "eur",
      purchases: 1,
      renewals: 2,
      gross: 3 * 499,
      platform_fees: 3 * 62,
      refunds: { count: 2, amount: 998 },
      active: 1,
    });
    // A refund of nothing the service knows (a payment no invoice names) is kept and counts nowhere.
    const before = await totals();
    const stray = p.fake.event("charge.refunded", {
      ...p.fake.charges.get(String(first.charge?.id)),
      id: `ch_stray_${crypto.randomUUID()}`,
      payment_intent: `pi_stray_${crypto.randomUUID()}`,
    });
    expect((await p.deliver(stray)).body.outcome).toBe("processed");
    expect(await totals()).toEqual(before);
  });

  test("the buyer's export holds their renewals, with what was refunded of each", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    const renewals = [p.fake.renewSubscription(buyer.subscription.id), p.fake.renewSubscription(buyer.subscription.id)];
    for (const renewal of renewals) await p.deliver(renewal.paid);
    await p.stripe.refunds.create({ payment_intent: renewals[1]?.paymentIntent?.id as string, amount: 200 });
    await p.deliver(p.lastEmitted("charge.refunded"));

    const part = await exportPartOf(p.server.platform, buyer.userId);
    const data = JSON.parse(part.json as string);
    expect(data.purchases).toEqual([
      expect.objectContaining({
        plugin_id: id,
        model: "monthly",
        amount: 499,
        renewals: renewals.map((renewal, index) => ({
          invoice_id: renewal.invoice.id,
          amount: 499,
          currency: "eur",
          amount_refunded: index === 1 ? 200 : 0,
          paid_at: expect.any(String),
        })),
      }),
    ]);
  });
});

describe("refunds of a subscription's first payment", () => {
  const salesOf = async (token: string) => (await p.call("GET", "/developers/me/sales", { token })).body.items;
  const lookups = () => p.fake.requestsTo("GET", "/v1/invoice_payments").length;

  test("count in the publisher's refunds once, however often Stripe sends them; the subscription keeps paying for the plugin", async () => {
    const seller = await p.payablePublisher();
    const id = await p.paidPlugin(seller, MONTHLY, { name: "First month refunded" });
    const buyer = await p.subscribedCheckout(id);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect((await p.deliver(p.lastEmitted("invoice.paid"))).body.outcome).toBe("ignored");
    const firstPayment = buyer.paymentIntent?.id as string;
    expect(firstPayment).toEqual(expect.any(String));
    const asked = lookups();

    await p.stripe.refunds.create({ payment_intent: firstPayment, amount: 150 });
    const partial = p.lastEmitted("charge.refunded");
    // Delivered three times at once, then again: counted once.
    const answers = await Promise.all([p.deliver(partial), p.deliver(partial), p.deliver(partial)]);
    expect(answers.map((answer) => answer.body.outcome).sort()).toEqual(["duplicate", "duplicate", "processed"]);
    // Each delivery in flight before the first committed may have asked Stripe which invoice it paid.
    const askedAtOnce = lookups() - asked;
    expect(askedAtOnce).toBeGreaterThanOrEqual(1);
    expect(askedAtOnce).toBeLessThanOrEqual(3);
    expect((await p.deliver(partial)).body.outcome).toBe("duplicate");
    const totals = async () => (await salesOf(seller.token))[0]?.totals;
    expect(await totals()).toEqual([
      {
        currency: "eur",
        purchases: 1,
        renewals: 0,
        gross: 499,
        platform_fees: 62,
        refunds: { count: 1, amount: 150 },
        active: 1,
      },
    ]);
    // The rest of it: Stripe's running total, so the payment counts once with all of it.
    await p.stripe.refunds.create({ payment_intent: firstPayment });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect((await totals())?.[0]?.refunds).toEqual({ count: 1, amount: 499 });
    // The partial refund's event delivered late, as another event: its smaller total changes nothing.
    const late = partial.replace(/"id": "evt_[^"]+"/, `"id": "evt_late_${crypto.randomUUID()}"`);
    expect((await p.deliver(late)).body.outcome).toBe("processed");
    expect((await totals())?.[0]?.refunds).toEqual({ count: 1, amount: 499 });
    // Once the invoice was known, no later refund of the payment asked Stripe again.
    expect(lookups() - asked).toBe(askedAtOnce);

    // Access follows the subscription, as after a renewal's refund: still paid for and offered.
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({ status: "active" });
    expect((await installOf(buyer.userId, id))?.entitlementId).not.toBeNull();
    expect(await p.offered(buyer.userId)).toEqual([id]);

    // A renewal and its refund count besides it, each against its own payment.
    const renewal = p.fake.renewSubscription(buyer.subscription.id);
    expect((await p.deliver(renewal.paid)).body.outcome).toBe("processed");
    await p.stripe.refunds.create({ payment_intent: renewal.paymentIntent?.id as string, amount: 100 });
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(await totals()).toEqual([
      {
        currency: "eur",
        purchases: 1,
        renewals: 1,
        gross: 998,
        platform_fees: 124,
        refunds: { count: 2, amount: 599 },
        active: 1,
      },
    ]);

    // Cancelling the subscription is what ends access; the refunds stay counted.
    await p.stripe.subscriptions.cancel(buyer.subscription.id);
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect(await p.offered(buyer.userId)).toEqual([]);
    expect(await totals()).toEqual([
      {
        currency: "eur",
        purchases: 1,
        renewals: 1,
        gross: 998,
        platform_fees: 124,
        refunds: { count: 2, amount: 599 },
        active: 0,
      },
    ]);
  });

  test("a refund delivered before its subscription's completion counts once the completion is recorded", async () => {
    const seller = await p.payablePublisher();
    const id = await p.paidPlugin(seller, MONTHLY, { name: "Refunded before completion" });
    const buyer = await p.subscribedCheckout(id);
    await p.stripe.refunds.create({ payment_intent: buyer.paymentIntent?.id as string });
    const refunded = p.lastEmitted("charge.refunded");
    expect((await p.deliver(refunded)).body.outcome).toBe("processed");
    // No purchase yet: the plugin has sold nothing the publisher sees.
    expect(await salesOf(seller.token)).toEqual([]);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect((await salesOf(seller.token))[0]?.totals).toEqual([
      {
        currency: "eur",
        purchases: 1,
        renewals: 0,
        gross: 499,
        platform_fees: 62,
        refunds: { count: 1, amount: 499 },
        active: 1,
      },
    ]);
    // Both again: nothing counts twice.
    expect((await p.deliver(refunded)).body.outcome).toBe("duplicate");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect((await salesOf(seller.token))[0]?.totals[0]?.refunds).toEqual({ count: 1, amount: 499 });
    // The completion recorded the subscription's first invoice, which is what matches the refund.
    expect(await purchaseBySubscription(buyer.subscription.id)).toMatchObject({
      firstInvoiceId: buyer.invoice.id,
      status: "active",
    });
  });

  test("the buyer's export shows what was refunded of the first payment on the purchase", async () => {
    const id = await p.paidPlugin(publisher, MONTHLY);
    const buyer = await p.subscribedCheckout(id);
    await p.deliver(buyer.event);
    await p.stripe.refunds.create({ payment_intent: buyer.paymentIntent?.id as string, amount: 99 });
    await p.deliver(p.lastEmitted("charge.refunded"));

    const part = await exportPartOf(p.server.platform, buyer.userId);
    const data = JSON.parse(part.json as string);
    expect(data.purchases).toEqual([
      expect.objectContaining({ plugin_id: id, model: "monthly", amount: 499, amount_refunded: 99, renewals: [] }),
    ]);
  });
});

describe("a payment completed after its publisher's account was deleted", () => {
  /** A payable developer's live plugin, a buyer's checkout of it paid in Stripe, then the developer erased. */
  const erasedAfter = async <T>(pricing: typeof ONE_OFF | typeof MONTHLY, buy: (pluginId: string) => Promise<T>) => {
    const dev = await p.payablePublisher();
    const id = await p.paidPlugin(dev, pricing);
    const buyer = await buy(id);
    await p.erase(dev.userId);
    expect(await db().select().from(pluginRows).where(eq(pluginRows.id, id))).toEqual([]);
    return { dev, id, buyer };
  };
  const boughtOnce = () => erasedAfter(ONE_OFF, (id) => p.paidCheckout(id));
  const subscribed = () => erasedAfter(MONTHLY, (id) => p.subscribedCheckout(id));
  const refundsOf = (paymentIntentId: string) =>
    p.fake.requestsTo("POST", "/v1/refunds").filter((each) => each.params.payment_intent === paymentIntentId);
  const nothingLeft = async (userId: string, pluginId: string) => {
    expect(await db().select().from(purchases).where(eq(purchases.pluginId, pluginId))).toEqual([]);
    expect(await purchasesOf(userId)).toEqual([]);
    expect(await installOf(userId, pluginId)).toBeUndefined();
    expect(await p.offered(userId)).toEqual([]);
    expect(await listed(await p.token(userId, "team"))).toEqual([]);
  };

  test("one-off: refunded in full through Stripe, nothing recorded, nothing installed", async () => {
    const { dev, id, buyer } = await boughtOnce();
    const paymentIntentId = buyer.paymentIntent.id;
    // The erasure kept the plugin's id, and nothing of its developer.
    const kept = await db().select().from(erasedPlugins).where(eq(erasedPlugins.pluginId, id));
    expect(kept).toHaveLength(1);
    expect(JSON.stringify(kept)).not.toContain(dev.userId);
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");

    await nothingLeft(buyer.userId, id);
    expect(refundsOf(paymentIntentId)).toEqual([
      expect.objectContaining({
        params: expect.objectContaining({ refund_application_fee: "true", reverse_transfer: "true" }),
        idempotencyKey: `plugin-refund:${paymentIntentId}`,
      }),
    ]);
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: true, amount_refunded: 1500 });
    // A redelivery asks Stripe nothing more; Stripe's refund event changes nothing.
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect((await p.deliver(p.lastEmitted("charge.refunded"))).body.outcome).toBe("processed");
    expect(refundsOf(paymentIntentId)).toHaveLength(1);
    await nothingLeft(buyer.userId, id);
  });

  test("monthly: the subscription is cancelled at once and its customer deleted, nothing recorded, nothing installed", async () => {
    const { id, buyer } = await subscribed();
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");

    expect(p.fake.subscriptions.get(buyer.subscription.id)).toMatchObject({ status: "canceled" });
    expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`)).toEqual([
      expect.objectContaining({ idempotencyKey: `plugin-cancel:${buyer.subscription.id}` }),
    ]);
    // The customer Checkout made for this purchase only: nothing of it would ever be deleted otherwise.
    expect(p.fake.customers.has(String(buyer.subscription.customer))).toBe(false);
    await nothingLeft(buyer.userId, id);
    const [state] = await db()
      .select()
      .from(subscriptionStates)
      .where(eq(subscriptionStates.subscriptionId, buyer.subscription.id));
    expect(state?.state).toBe("canceled");
    // Stripe's deletion event and a redelivery change nothing and ask Stripe nothing more.
    expect((await p.deliver(p.lastEmitted("customer.subscription.deleted"))).body.outcome).toBe("processed");
    expect((await p.deliver(buyer.event)).body.outcome).toBe("duplicate");
    expect(p.fake.requestsTo("DELETE", `/v1/subscriptions/${buyer.subscription.id}`)).toHaveLength(1);
    await nothingLeft(buyer.userId, id);
  });

  test("what was given back is logged with the event, the buyer, the plugin and the payment", async () => {
    const { id, buyer } = await boughtOnce();
    const captured = captureLogger();
    const ctx = createPluginsContext({ ...p.server.platform, logger: captured.logger });
    const signature = await signWebhook(buyer.event, WEBHOOK_SECRET);
    expect(await receivePaymentWebhook({ ctx, input: { payload: buyer.event, signature } })).toEqual({
      received: true,
      outcome: "processed",
    });
    expect(captured.lines).toContainEqual(
      expect.objectContaining({
        msg: "a plugin payment made after its publisher's account was deleted: refunded",
        event: JSON.parse(buyer.event).id,
        user_id: buyer.userId,
        plugin_id: id,
        payment_intent: buyer.paymentIntent.id,
      }),
    );
    // Not the error asking an operator to refund it by hand.
    expect(captured.lines.map((line) => line.msg)).not.toContain("a plugin payment was not honoured; refund it");
  });

  test("Stripe unreachable: 503 and nothing recorded; Stripe's redelivery gives the payment back", async () => {
    const { id, buyer } = await boughtOnce();
    p.fake.unavailable = true;
    try {
      expect(codeOf(await p.deliver(buyer.event))).toEqual({ status: 503, code: "stripe_unavailable" });
    } finally {
      p.fake.unavailable = false;
    }
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: false });
    expect((await p.deliver(buyer.event)).body.outcome).toBe("processed");
    expect(p.fake.charges.get(buyer.charge.id)).toMatchObject({ refunded: true });
    await nothingLeft(buyer.userId, id);
  });

  test("a plugin the service never had is not the erased publisher's: logged for an operator, nothing given back", async () => {
    const id = await p.paidPlugin(publisher, ONE_OFF);
    const buyer = await p.paidCheckout(id);
    const object = JSON.parse(buyer.event).data.object;
    const unknown = p.fake.event("checkout.session.completed", {
      ...object,
      id: `cs_unknown_${crypto.randomUUID()}`,
      metadata: { ...object.metadata, plugin_id: crypto.randomUUID() },
    });
    expect((await p.deliver(unknown)).body.outcome).toBe("processed");
    expect(refundsOf(buyer.paymentIntent.id)).toEqual([]);
    expect(await purchasesOf(buyer.userId)).toEqual([]);
  });
});
