// Strategy: see harness.ts — the real service and Stripe SDK against a fake Stripe API on a free port.
// Per-user limits: every route spends the tier's requests per minute of billing; checkout and the
// customer portal, each a Stripe session, share a small budget of their own. Counted on the fake.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TIER_LIMITS } from "../../src/shared/tiers";
import { type BillingHarness, newUserId, startBilling } from "./harness";

let h: BillingHarness;
beforeAll(async () => {
  h = await startBilling();
});
afterAll(() => h.ctx.close());

const SESSIONS = TIER_LIMITS.free.billingSessionsPerMinute;
const limitOf = (response: Awaited<ReturnType<BillingHarness["send"]>>) => ({
  status: response.status,
  code: response.body?.error?.code,
  policy: response.headers.get("ratelimit-policy"),
  retryAfter: Number(response.headers.get("retry-after")) > 0,
});

describe("Stripe sessions", () => {
  test("a free user gets a few checkouts a minute, then 429 with RateLimit headers; another user is unaffected", async () => {
    const userId = newUserId();
    const token = await h.ctx.token(userId);
    const first = await h.send("POST", "/checkout", { token, body: { tier: "pro" } });
    expect({ status: first.status, policy: first.headers.get("ratelimit-policy") }).toEqual({
      status: 200,
      policy: `"billing";q=20;w=60, "billing-sessions";q=${SESSIONS};w=60`,
    });
    for (let i = 1; i < SESSIONS; i++) {
      expect((await h.send("POST", "/checkout", { token, body: { tier: "pro" } })).status).toBe(200);
    }
    expect(limitOf(await h.send("POST", "/checkout", { token, body: { tier: "pro" } }))).toEqual({
      status: 429,
      code: "rate_limited",
      policy: `"billing-sessions";q=${SESSIONS};w=60`,
      retryAfter: true,
    });
    // The portal opens a Stripe session too: same budget.
    expect(limitOf(await h.send("POST", "/portal", { token })).status).toBe(429);
    expect((await h.send("GET", "/subscription", { token })).status).toBe(200);

    const other = await h.ctx.token(newUserId());
    expect((await h.send("POST", "/checkout", { token: other, body: { tier: "pro" } })).status).toBe(200);
  });

  test("60 portal sessions at once from a free user open only as many as the budget allows", async () => {
    const userId = newUserId();
    const token = await h.ctx.token(userId);
    expect((await h.send("POST", "/checkout", { token, body: { tier: "pro" } })).status).toBe(200);
    const before = h.fake.portalSessions.size;
    const answers = await Promise.all(Array.from({ length: 60 }, () => h.send("POST", "/portal", { token })));
    const statuses = answers.map((each) => each.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(SESSIONS - 1);
    expect(statuses.filter((status) => status === 429)).toHaveLength(60 - (SESSIONS - 1));
    expect(h.fake.portalSessions.size - before).toBe(SESSIONS - 1);
    expect(limitOf(answers.find((each) => each.status === 429)!)).toMatchObject({
      code: "rate_limited",
      retryAfter: true,
    });
  });
});

describe("the billing service's requests per minute", () => {
  test("a free user gets 20 requests a minute on any route, then 429; another user is unaffected", async () => {
    const token = await h.ctx.token(newUserId());
    for (let i = 0; i < TIER_LIMITS.free.requestsPerMinute; i++) {
      expect((await h.send("GET", "/subscription", { token })).status).toBe(200);
    }
    expect(limitOf(await h.send("GET", "/subscription", { token }))).toEqual({
      status: 429,
      code: "rate_limited",
      policy: '"billing";q=20;w=60',
      retryAfter: true,
    });
    expect((await h.send("DELETE", "/subscription", { token })).status).toBe(429);
    expect((await h.send("GET", "/subscription", { token: await h.ctx.token(newUserId()) })).status).toBe(200);
  });

  test("the Stripe webhook is not limited per user", async () => {
    const payloads = Array.from({ length: 30 }, () =>
      h.fake.event("customer.created", { id: `cus_${crypto.randomUUID()}` }),
    );
    const statuses = (await Promise.all(payloads.map((payload) => h.webhook(payload)))).map((each) => each.status);
    expect(statuses).toEqual(payloads.map(() => 200));
  });
});
