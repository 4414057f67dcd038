// Strategy: see harness.ts — the real service and Stripe SDK against a fake Stripe API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type BillingHarness, isOwnIdempotencyKey, newUserId, PUBLIC_URL, startBilling } from "./harness";

let h: BillingHarness;
beforeAll(async () => {
  h = await startBilling();
});
afterAll(() => h.ctx.close());

describe("GET /subscription", () => {
  test("a user who never subscribed is on free with no subscription", async () => {
    const response = await h.call("GET", "/subscription", { token: await h.ctx.token(newUserId()) });
    expect(response).toEqual({
      status: 200,
      body: { tier: "free", status: "none", current_period_end: null, cancel_at_period_end: false },
    });
  });

  test("shows the period end Stripe reported", async () => {
    const { token, subscription } = await h.subscribe(newUserId(), "power");
    const periodEnd = (subscription.items as { data: Array<{ current_period_end: number }> }).data[0]!
      .current_period_end;
    expect((await h.call("GET", "/subscription", { token })).body).toEqual({
      tier: "power",
      status: "active",
      current_period_end: new Date(periodEnd * 1000).toISOString(),
      cancel_at_period_end: false,
    });
  });
});

describe("DELETE /subscription", () => {
  test("cancels at the period end by default; the tier falls when Stripe says it ended", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const response = await h.call("DELETE", "/subscription", { token });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ tier: "pro", status: "active", cancel_at_period_end: true });
    const [update] = h.fake.requestsTo("POST", `/v1/subscriptions/${subscription.id}`);
    expect(update?.params).toEqual({ cancel_at_period_end: "true" });
    expect(isOwnIdempotencyKey(update?.idempotencyKey ?? null)).toBe(true);

    const ended = h.fake.updateSubscription(subscription.id, { status: "canceled" });
    await h.webhook(h.fake.event("customer.subscription.deleted", ended));
    expect((await h.call("GET", "/subscription", { token })).body).toMatchObject({ tier: "free", status: "canceled" });
    expect((await h.eventsFor(userId)).map((event) => [event.previousTier, event.tier])).toEqual([
      ["free", "pro"],
      ["pro", "free"],
    ]);
  });

  test("cancelling again changes nothing and calls Stripe no more", async () => {
    const { token, subscription } = await h.subscribe(newUserId(), "pro");
    await h.call("DELETE", "/subscription", { token });
    const again = await h.call("DELETE", "/subscription", { token });
    expect(again.body).toMatchObject({ tier: "pro", cancel_at_period_end: true });
    expect(h.fake.requestsTo("POST", `/v1/subscriptions/${subscription.id}`)).toHaveLength(1);
  });

  test("?immediately=true ends it now and announces free once", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "team");
    const response = await h.call("DELETE", "/subscription?immediately=true", { token });
    expect(response.body).toMatchObject({ tier: "free", status: "canceled" });
    expect(h.fake.requestsTo("DELETE", `/v1/subscriptions/${subscription.id}`)).toHaveLength(1);
    // Stripe's own notice of the cancellation follows and finds nothing new.
    await h.webhook(h.fake.event("customer.subscription.deleted", h.fake.subscriptions.get(subscription.id)!));
    const events = await h.eventsFor(userId);
    expect(events.map(({ tier, reason }) => ({ tier, reason }))).toEqual([
      { tier: "team", reason: "checkout.session.completed" },
      { tier: "free", reason: "subscription.canceled_by_user" },
    ]);
  });

  test("with no subscription is 404", async () => {
    const response = await h.call("DELETE", "/subscription", { token: await h.ctx.token(newUserId()) });
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("not_found");
  });

  test("a bad query is 422", async () => {
    const { token } = await h.subscribe(newUserId(), "pro");
    const response = await h.call("DELETE", "/subscription?immediately=maybe", { token });
    expect(response.status).toBe(422);
  });

  test("Stripe down is 503 and the subscription is unchanged", async () => {
    const { token } = await h.subscribe(newUserId(), "pro");
    h.fake.unavailable = true;
    try {
      expect((await h.call("DELETE", "/subscription", { token })).status).toBe(503);
    } finally {
      h.fake.unavailable = false;
    }
    expect((await h.call("GET", "/subscription", { token })).body.cancel_at_period_end).toBe(false);
  });
});

describe("POST /portal", () => {
  test("returns a portal session for the user's own customer", async () => {
    const userId = newUserId();
    const { token, session } = await h.subscribe(userId, "pro");
    const response = await h.call("POST", "/portal", { token });
    expect(response.status).toBe(200);
    const portalId = String(response.body.url).split("/").pop() ?? "";
    expect(h.fake.portalSessions.get(portalId)).toMatchObject({
      customer: session.customer,
      return_url: `${PUBLIC_URL}/billing`,
    });
  });

  test("uses an allowed return URL and refuses others", async () => {
    const { token } = await h.subscribe(newUserId(), "pro");
    const ok = await h.call("POST", "/portal", { token, body: { return_url: "adiuva://billing/back" } });
    expect(ok.status).toBe(200);
    const portalId = String(ok.body.url).split("/").pop() ?? "";
    expect(h.fake.portalSessions.get(portalId)?.return_url).toBe("adiuva://billing/back");
    for (const body of [{ return_url: "https://evil.example" }, { return_url: 42 }, { other: 1 }]) {
      const refused = await h.call("POST", "/portal", { token, body });
      expect(refused.status).toBe(422);
    }
  });

  test("before any checkout is 404", async () => {
    const response = await h.call("POST", "/portal", { token: await h.ctx.token(newUserId()) });
    expect(response.status).toBe(404);
  });
});

describe("isolation between users", () => {
  test("another user sees and touches none of it", async () => {
    const owner = await h.subscribe(newUserId(), "pro");
    const other = await h.ctx.token(newUserId());
    expect((await h.call("GET", "/subscription", { token: other })).body).toEqual({
      tier: "free",
      status: "none",
      current_period_end: null,
      cancel_at_period_end: false,
    });
    expect((await h.call("DELETE", "/subscription", { token: other })).status).toBe(404);
    expect((await h.call("POST", "/portal", { token: other })).status).toBe(404);
    expect(h.fake.subscriptions.get(owner.subscription.id)?.cancel_at_period_end).toBe(false);
    expect((await h.call("GET", "/subscription", { token: owner.token })).body.tier).toBe("pro");
  });
});

describe("authentication", () => {
  const routes: Array<[string, string, unknown]> = [
    ["POST", "/checkout", { tier: "pro" }],
    ["GET", "/subscription", undefined],
    ["DELETE", "/subscription", undefined],
    ["POST", "/portal", {}],
  ];
  for (const [method, path, body] of routes) {
    test(`${method} ${path} without a token is 401`, async () => {
      const response = await h.call(method, path, { body });
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBeString();
    });
    test(`${method} ${path} with an expired or forged token is 401`, async () => {
      const expired = await h.ctx.token(newUserId(), "pro", { expiresInS: -60 });
      expect((await h.call(method, path, { body, token: expired })).status).toBe(401);
      const forged = `${expired.slice(0, -4)}AAAA`;
      expect((await h.call(method, path, { body, token: forged })).status).toBe(401);
    });
  }
});
