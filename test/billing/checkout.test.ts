// Strategy: see harness.ts — the real service and Stripe SDK against a fake Stripe API on a free port.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type BillingHarness, isOwnIdempotencyKey, newUserId, PRICES, PUBLIC_URL, startBilling } from "./harness";

let h: BillingHarness;
beforeAll(async () => {
  h = await startBilling();
});
afterAll(() => h.ctx.close());

describe("POST /checkout", () => {
  test("creates the customer with the user id and a subscription Checkout Session", async () => {
    const userId = newUserId();
    const response = await h.call("POST", "/checkout", { token: await h.ctx.token(userId), body: { tier: "pro" } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ mode: "checkout", url: expect.stringContaining("/c/pay/cs_test_") });

    const [customer] = [...h.fake.customers.values()].filter(
      (c) => (c.metadata as { user_id?: string }).user_id === userId,
    );
    expect(customer).toBeDefined();
    const sessionId = String(response.body.url).split("/").pop() ?? "";
    expect(h.fake.sessions.get(sessionId)).toMatchObject({
      mode: "subscription",
      customer: customer?.id,
      client_reference_id: userId,
      line_items: [{ price: PRICES.pro, quantity: "1" }],
      // Stripe fills in the session id, which the success page confirms with Stripe (docs/pages.md).
      success_url: `${PUBLIC_URL}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: `${PUBLIC_URL}/billing/cancel`,
      subscription_data: { metadata: { user_id: userId } },
    });
  });

  test("every Stripe write carries our own idempotency key", async () => {
    const userId = newUserId();
    await h.call("POST", "/checkout", { token: await h.ctx.token(userId), body: { tier: "power" } });
    const writes = h.fake.requests.filter((r) => r.method === "POST");
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.filter((r) => !isOwnIdempotencyKey(r.idempotencyKey))).toEqual([]);
    const customerWrites = h.fake.requestsTo("POST", "/v1/customers");
    expect(customerWrites.map((r) => r.idempotencyKey)).toContain(`customer:${userId}`);
  });

  test("two checkouts at once create one customer", async () => {
    const userId = newUserId();
    const token = await h.ctx.token(userId);
    const before = h.fake.customers.size;
    const [a, b] = await Promise.all([
      h.call("POST", "/checkout", { token, body: { tier: "pro" } }),
      h.call("POST", "/checkout", { token, body: { tier: "power" } }),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(h.fake.customers.size).toBe(before + 1);
    // Created once on our side, not merely deduplicated by Stripe's idempotency key.
    const creates = h.fake.requestsTo("POST", "/v1/customers").filter((r) => r.idempotencyKey === `customer:${userId}`);
    expect(creates).toHaveLength(1);
    const owned = [...h.fake.sessions.values()].filter((s) => s.client_reference_id === userId);
    expect(new Set(owned.map((s) => s.customer)).size).toBe(1);
  });

  test("a double click gets the same session", async () => {
    const token = await h.ctx.token(newUserId());
    const [a, b] = await Promise.all([
      h.call("POST", "/checkout", { token, body: { tier: "team" } }),
      h.call("POST", "/checkout", { token, body: { tier: "team" } }),
    ]);
    expect(a.body.url).toBe(b.body.url);
  });

  test("client redirect URLs on an allowed origin are used", async () => {
    const userId = newUserId();
    const response = await h.call("POST", "/checkout", {
      token: await h.ctx.token(userId),
      body: { tier: "pro", success_url: "adiuva://billing/done", cancel_url: `${PUBLIC_URL}/pricing` },
    });
    expect(response.status).toBe(200);
    const sessionId = String(response.body.url).split("/").pop() ?? "";
    expect(h.fake.sessions.get(sessionId)).toMatchObject({
      success_url: "adiuva://billing/done",
      cancel_url: `${PUBLIC_URL}/pricing`,
    });
  });

  test("a subscriber asking for another tier is sent to change it, not to buy again", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const sessionsBefore = h.fake.sessions.size;
    const response = await h.call("POST", "/checkout", { token, body: { tier: "power" } });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ mode: "change", url: expect.stringContaining("/p/session/bps_") });
    expect(h.fake.sessions.size).toBe(sessionsBefore);
    const portalId = String(response.body.url).split("/").pop() ?? "";
    const item = (subscription.items as { data: Array<{ id: string }> }).data[0];
    expect(h.fake.portalSessions.get(portalId)).toMatchObject({
      flow_data: {
        type: "subscription_update_confirm",
        subscription_update_confirm: {
          subscription: subscription.id,
          items: [{ id: item?.id, price: PRICES.power, quantity: "1" }],
        },
      },
    });
  });

  test("a subscriber asking for the tier they have gets 409", async () => {
    const { token } = await h.subscribe(newUserId(), "pro");
    const response = await h.call("POST", "/checkout", { token, body: { tier: "pro" } });
    expect(response.status).toBe(409);
    expect(response.body.error.code).toBe("already_subscribed");
  });

  test("Stripe down is 503 and creates nothing", async () => {
    const userId = newUserId();
    const customersBefore = h.fake.customers.size;
    h.fake.unavailable = true;
    try {
      const response = await h.call("POST", "/checkout", { token: await h.ctx.token(userId), body: { tier: "pro" } });
      expect(response.status).toBe(503);
      expect(response.body.error.code).toBe("stripe_unavailable");
    } finally {
      h.fake.unavailable = false;
    }
    expect(h.fake.customers.size).toBe(customersBefore);
    const retry = await h.call("POST", "/checkout", { token: await h.ctx.token(userId), body: { tier: "pro" } });
    expect(retry.status).toBe(200);
  });

  describe("validation", () => {
    const cases: Array<[string, unknown]> = [
      ["the free tier", { tier: "free" }],
      ["an unknown tier", { tier: "gold" }],
      ["no tier", {}],
      ["a malformed URL", { tier: "pro", success_url: "not a url" }],
      ["an unknown field", { tier: "pro", coupon: "FREE" }],
      ["a redirect to another site", { tier: "pro", success_url: "https://evil.example/steal" }],
      ["a javascript: URL", { tier: "pro", cancel_url: "javascript:alert(1)" }],
    ];
    for (const [name, body] of cases) {
      test(`${name} is 422`, async () => {
        const response = await h.call("POST", "/checkout", { token: await h.ctx.token(newUserId()), body });
        expect(response.status).toBe(422);
        expect(response.body.error.code).toBe("validation_failed");
      });
    }
  });
});
