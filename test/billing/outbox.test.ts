// Strategy: billing reaches Redis through a TCP proxy the test controls, so Redis "goes down" for
// billing alone; the test reads the stream straight from the real Redis.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { outbox } from "../../src/billing/tables";
import { eventually, TcpProxy, TEST_REDIS_URL, viaProxy } from "../../src/shared/testing";
import { type BillingHarness, newUserId, startBilling } from "./harness";

const redisUrl = new URL(TEST_REDIS_URL);
const proxy = new TcpProxy(redisUrl.hostname, Number(redisUrl.port || 6379));
let h: BillingHarness;
beforeAll(async () => {
  proxy.start();
  h = await startBilling({ env: { REDIS_URL: viaProxy(TEST_REDIS_URL, proxy.port) } });
});
afterAll(async () => {
  await h.ctx.close();
  proxy.stop();
});

test("a tier change made while Redis is down reaches the stream once Redis is back", async () => {
  const userId = newUserId();
  const { token, subscription } = await h.subscribe(userId, "pro");
  expect(await h.eventsFor(userId)).toHaveLength(1);

  proxy.cut();
  try {
    const upgraded = h.fake.updateSubscription(subscription.id, { price: "price_power_monthly" });
    const delivered = await h.webhook(h.fake.event("customer.subscription.updated", upgraded));
    expect(delivered.status).toBe(200);
    expect((await h.call("GET", "/subscription", { token })).body.tier).toBe("power");
    // The relay tried, failed, and kept the row.
    const rows = await eventually(
      () => h.platform.db.select().from(outbox),
      (found) => found.some((row) => row.attempts >= 2),
    );
    expect(rows).toEqual([
      expect.objectContaining({
        userId,
        attempts: expect.any(Number),
        lastError: expect.any(String),
        event: expect.objectContaining({ tier: "power", previousTier: "pro" }),
      }),
    ]);
  } finally {
    proxy.resume();
  }

  const events = await h.eventsFor(userId);
  expect(events.map(({ tier, previousTier }) => ({ tier, previousTier }))).toEqual([
    { tier: "pro", previousTier: "free" },
    { tier: "power", previousTier: "pro" },
  ]);
});
