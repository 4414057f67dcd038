// Strategy: see harness.ts — the real service and Stripe SDK against a fake Stripe API; webhooks are
// signed with the SDK's own test helper, and tier changes are read back from the Redis Stream.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { processedEvents } from "../../src/billing/tables";
import { signWebhook } from "../../src/shared/testing/fake-stripe";
import { type BillingHarness, newUserId, startBilling, WEBHOOK_SECRET } from "./harness";

let h: BillingHarness;
beforeAll(async () => {
  h = await startBilling();
});
afterAll(() => h.ctx.close());

const tierOf = async (token: string) => (await h.call("GET", "/subscription", { token })).body;
const wasProcessed = async (eventId: string) =>
  (await h.platform.db.select().from(processedEvents).where(eq(processedEvents.eventId, eventId))).length === 1;

describe("POST /webhook", () => {
  test("checkout.session.completed grants the tier and puts one tier change on the stream", async () => {
    const userId = newUserId();
    const { token } = await h.subscribe(userId, "pro");
    expect(await tierOf(token)).toEqual({
      tier: "pro",
      status: "active",
      current_period_end: expect.any(String),
      cancel_at_period_end: false,
    });
    expect(await h.eventsFor(userId)).toEqual([
      {
        eventId: expect.any(String),
        userId,
        tier: "pro",
        previousTier: "free",
        reason: "checkout.session.completed",
        occurredAt: expect.any(Number),
      },
    ]);
  });

  test("a bad signature is 400 and changes nothing", async () => {
    const userId = newUserId();
    const { token, session } = await h.checkoutAndPay(userId, "pro");
    const payload = h.fake.event("checkout.session.completed", session);
    const eventId = JSON.parse(payload).id;

    const forged = await h.webhook(payload, { signature: await signWebhook(payload, "whsec_someone_else") });
    expect(forged.status).toBe(400);
    expect(forged.body.error.code).toBe("invalid_signature");
    const altered = payload.replace('"livemode": false', '"livemode": true');
    expect(altered).not.toBe(payload);
    const tampered = await h.webhook(altered, {
      signature: await signWebhook(payload, WEBHOOK_SECRET),
    });
    expect(tampered.status).toBe(400);
    const unsigned = await h.webhook(payload, { signature: null });
    expect(unsigned.status).toBe(400);
    const garbage = await h.webhook(payload, { signature: "t=1,v1=nothex" });
    expect(garbage.status).toBe(400);

    expect(await wasProcessed(eventId)).toBe(false);
    expect((await tierOf(token)).tier).toBe("free");
    expect(await h.eventsFor(userId)).toEqual([]);
    // The genuine delivery of the same event still applies: the forgeries did not consume it.
    expect((await h.webhook(payload)).body).toEqual({ received: true, outcome: "processed" });
    expect((await tierOf(token)).tier).toBe("pro");
  });

  test("a signature older than the tolerance is 400; within it, accepted", async () => {
    const { subscription } = await h.subscribe(newUserId(), "pro");
    const now = Math.floor(Date.now() / 1000);
    const stale = await h.webhook(h.fake.event("customer.subscription.updated", subscription), {
      timestamp: now - 301,
    });
    expect(stale.status).toBe(400);
    expect(stale.body.error.code).toBe("invalid_signature");
    const recent = await h.webhook(h.fake.event("customer.subscription.updated", subscription), {
      timestamp: now - 200,
    });
    expect(recent.status).toBe(200);
  });

  test("a signed body that is not JSON is 400", async () => {
    const response = await h.webhook("{not json");
    expect(response.status).toBe(400);
  });

  test("a replayed event is acknowledged and not applied again", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const payload = h.fake.event("customer.subscription.updated", subscription);
    expect((await h.webhook(payload)).body).toEqual({ received: true, outcome: "processed" });
    // Stripe now says power, but only the replay arrives: applying it again would read that.
    h.fake.updateSubscription(subscription.id, { price: "price_power_monthly" });
    expect((await h.webhook(payload)).body).toEqual({ received: true, outcome: "duplicate" });
    expect((await tierOf(token)).tier).toBe("pro");
    expect(await h.eventsFor(userId)).toHaveLength(1);
  });

  test("the same event delivered twice at once is applied once", async () => {
    const userId = newUserId();
    const { session } = await h.checkoutAndPay(userId, "team");
    const payload = h.fake.event("checkout.session.completed", session);
    const outcomes = (await Promise.all([h.webhook(payload), h.webhook(payload)])).map((r) => r.body.outcome).sort();
    expect(outcomes).toEqual(["duplicate", "processed"]);
    expect(await h.eventsFor(userId)).toHaveLength(1);
  });

  test("an older event arriving after a newer one does not roll the tier back", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const older = h.fake.event("customer.subscription.updated", subscription);
    const upgraded = h.fake.updateSubscription(subscription.id, { price: "price_power_monthly" });
    const newer = h.fake.event("customer.subscription.updated", upgraded);
    expect(JSON.parse(older).created).toBeLessThan(JSON.parse(newer).created);

    expect((await h.webhook(newer)).status).toBe(200);
    expect((await tierOf(token)).tier).toBe("power");
    expect((await h.webhook(older)).status).toBe(200);
    expect((await tierOf(token)).tier).toBe("power");
    expect((await h.eventsFor(userId)).map((event) => event.tier)).toEqual(["pro", "power"]);
  });

  test("a late 'active' update after the deletion leaves the user on free", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const lateUpdate = h.fake.event("customer.subscription.updated", subscription);
    const deleted = h.fake.event(
      "customer.subscription.deleted",
      h.fake.updateSubscription(subscription.id, { status: "canceled" }),
    );
    expect((await h.webhook(deleted)).status).toBe(200);
    expect((await h.webhook(lateUpdate)).status).toBe(200);
    expect(await tierOf(token)).toMatchObject({ tier: "free", status: "canceled" });
    const events = await h.eventsFor(userId);
    expect(events.map(({ tier, previousTier, reason }) => ({ tier, previousTier, reason }))).toEqual([
      { tier: "pro", previousTier: "free", reason: "checkout.session.completed" },
      { tier: "free", previousTier: "pro", reason: "customer.subscription.deleted" },
    ]);
    expect(events[1]!.occurredAt).toBeGreaterThan(events[0]!.occurredAt);
  });

  test("a failed payment keeps the tier while Stripe retries; a paid invoice restores active", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    h.fake.updateSubscription(subscription.id, { status: "past_due" });
    expect(
      (await h.webhook(h.fake.event("invoice.payment_failed", h.fake.invoice(subscription.id, "open")))).body.outcome,
    ).toBe("processed");
    expect(await tierOf(token)).toMatchObject({ tier: "pro", status: "past_due" });
    h.fake.updateSubscription(subscription.id, { status: "active" });
    expect((await h.webhook(h.fake.event("invoice.paid", h.fake.invoice(subscription.id, "paid")))).body.outcome).toBe(
      "processed",
    );
    expect(await tierOf(token)).toMatchObject({ tier: "pro", status: "active" });
    expect(await h.eventsFor(userId)).toHaveLength(1);
  });

  test("unpaid after the retries run out drops the tier", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "power");
    const unpaid = h.fake.updateSubscription(subscription.id, { status: "unpaid" });
    await h.webhook(h.fake.event("customer.subscription.updated", unpaid));
    expect(await tierOf(token)).toMatchObject({ tier: "free", status: "unpaid" });
    expect((await h.eventsFor(userId)).map((event) => event.tier)).toEqual(["power", "free"]);
  });

  test("an unknown event type is acknowledged and ignored", async () => {
    const payload = h.fake.event("customer.tax_id.created", { id: "txi_1", object: "tax_id" });
    expect((await h.webhook(payload)).body).toEqual({ received: true, outcome: "ignored" });
    expect(await wasProcessed(JSON.parse(payload).id)).toBe(false);
  });

  test("an event about a customer we did not create is acknowledged and ignored", async () => {
    const stranger = h.fake.createSubscription({ customer: "cus_not_ours", price: "price_pro_monthly" });
    const response = await h.webhook(h.fake.event("customer.subscription.created", stranger));
    expect(response.body).toEqual({ received: true, outcome: "ignored" });
  });

  test("Stripe unreachable while applying: 503, nothing recorded, the redelivery applies it", async () => {
    const userId = newUserId();
    const { token, subscription } = await h.subscribe(userId, "pro");
    const upgraded = h.fake.updateSubscription(subscription.id, { price: "price_team_monthly" });
    const payload = h.fake.event("customer.subscription.updated", upgraded);
    h.fake.unavailable = true;
    try {
      const failed = await h.webhook(payload);
      expect(failed.status).toBe(503);
    } finally {
      h.fake.unavailable = false;
    }
    expect(await wasProcessed(JSON.parse(payload).id)).toBe(false);
    expect((await tierOf(token)).tier).toBe("pro");
    expect((await h.webhook(payload)).body.outcome).toBe("processed");
    expect((await tierOf(token)).tier).toBe("team");
  });
});
