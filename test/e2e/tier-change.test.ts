// Strategy: auth, billing and chat run as three separate service instances on one PostgreSQL and one
// Redis (see stack.ts); Stripe is the fake API behind the real SDK, with webhooks signed by the
// SDK's helper. Users sign up through auth's HTTP API and hold real tokens; their devices are SDK
// clients on chat's WebSocket that refresh the moment they get a `session` frame, as the app does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventually } from "../../src/shared/testing";
import { accessTokenOf, type SignedIn, type Stack, startStack, tierClaim } from "./stack";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.ctx.close();
});

/** Checkout, payment and the `checkout.session.completed` webhook; resolves once auth has the tier. */
async function subscribe(user: SignedIn, tier: "pro" | "power") {
  const paid = await stack.checkoutAndPay(user, tier);
  const delivered = await stack.webhook(stack.stripe.event("checkout.session.completed", paid.session));
  expect(delivered).toEqual({ status: 200, body: { received: true, outcome: "processed" } });
  expect(await stack.tierBecomes(user.userId, tier)).toBe(tier);
  return paid;
}

/** Waits for the device's first reaction to a `session` frame. */
/** The first entry of a list the device fills as things happen, once there is one. */
const firstOf = async <T>(list: T[]): Promise<T | undefined> =>
  (
    await eventually(
      () => list,
      (seen) => seen.length > 0,
    )
  )[0];
const firstRefresh = (device: { refreshes: unknown[] }) => firstOf(device.refreshes);
/** How the server closed the device's socket, once it has. */
const sessionEnded = (device: { closes: Array<{ code: number; reason: string }> }) => firstOf(device.closes);

describe("tier changes end to end", () => {
  test("checkout and its webhook raise users.tier; the next refresh and the connected device get pro", async () => {
    const user = await stack.signUp();
    expect(tierClaim(user.accessToken)).toBe("free");
    const device = await stack.device(await stack.login(user.email));

    await subscribe(user, "pro");

    expect(await stack.me(user.accessToken)).toEqual({ status: 200, tier: "pro" });
    const refreshed = await stack.refresh(user.refreshToken);
    expect(refreshed.status).toBe(200);
    expect(tierClaim(await accessTokenOf(refreshed))).toBe("pro");
    expect(await firstRefresh(device)).toBe("pro");
    expect(device.sessions).toEqual([{ type: "session", action: "refresh" }]);
  });

  test("a device told to refresh gets the new tier at once, never the old one", async () => {
    const user = await stack.signUp();
    const device = await stack.device(user);
    const paid = await stack.checkoutAndPay(user, "power");
    await stack.webhook(stack.stripe.event("checkout.session.completed", paid.session));
    // The device refreshes the moment the frame arrives: the frame must not outrun auth.
    expect(await firstRefresh(device)).toBe("power");
    expect(device.refreshes).toEqual(["power"]);
  });

  test("a change made while auth is stopped waits on the stream and is applied when auth starts", async () => {
    const user = await stack.signUp();
    const device = await stack.device(await stack.login(user.email));
    await stack.stopAuth();
    try {
      const paid = await stack.checkoutAndPay(user, "pro");
      const delivered = await stack.webhook(stack.stripe.event("checkout.session.completed", paid.session));
      expect(delivered.status).toBe(200);
      const events = await eventually(
        () => stack.streamEvents(user.userId),
        (found) => found.length > 0,
      );
      expect(events).toEqual([expect.objectContaining({ userId: user.userId, tier: "pro", previousTier: "free" })]);
      expect(await stack.tierInAuth(user.userId)).toBe("free");
    } finally {
      await stack.restartAuth();
    }
    expect(await stack.tierBecomes(user.userId, "pro")).toBe("pro");
    const refreshed = await stack.refresh(user.refreshToken);
    expect(tierClaim(await accessTokenOf(refreshed))).toBe("pro");
    // The device learns of the change once auth can hand out the new tier, not before.
    expect(await firstRefresh(device)).toBe("pro");
  });

  test("an immediate cancellation drops the tier and ends the sessions, device socket included", async () => {
    const user = await stack.signUp();
    await subscribe(user, "pro");
    const device = await stack.device(await stack.login(user.email));

    const cancelled = await stack.billingCall("DELETE", "/subscription?immediately=true", user.accessToken);
    expect(cancelled).toEqual({
      status: 200,
      body: expect.objectContaining({ tier: "free", status: "canceled" }),
    });

    expect(await stack.tierBecomes(user.userId, "free")).toBe("free");
    expect((await stack.refresh(user.refreshToken)).status).toBe(401);
    expect(await sessionEnded(device)).toEqual({ code: 4403, reason: "session ended" });
    const again = await stack.login(user.email);
    expect(tierClaim(again.accessToken)).toBe("free");
  });

  test("a subscription deleted in Stripe drops the tier the same way", async () => {
    const user = await stack.signUp();
    const { subscription } = await subscribe(user, "power");
    const device = await stack.device(await stack.login(user.email));

    const ended = stack.stripe.updateSubscription(subscription.id, { status: "canceled" });
    const delivered = await stack.webhook(stack.stripe.event("customer.subscription.deleted", ended));
    expect(delivered).toEqual({ status: 200, body: { received: true, outcome: "processed" } });

    expect(await stack.tierBecomes(user.userId, "free")).toBe("free");
    expect((await stack.refresh(user.refreshToken)).status).toBe(401);
    expect(await sessionEnded(device)).toEqual({ code: 4403, reason: "session ended" });
  });

  test("an older subscription event delivered after a newer one never lowers the tier in auth", async () => {
    const user = await stack.signUp();
    const { subscription } = await subscribe(user, "pro");
    // Stripe sent `created` (pro) first, but it reaches us only after the upgrade to power.
    const late = stack.stripe.event("customer.subscription.created", subscription);
    const upgraded = stack.stripe.updateSubscription(subscription.id, { price: "price_power_monthly" });
    await stack.webhook(stack.stripe.event("customer.subscription.updated", upgraded));
    expect(await stack.tierBecomes(user.userId, "power")).toBe("power");

    expect(await stack.webhook(late)).toEqual({ status: 200, body: { received: true, outcome: "processed" } });
    expect(await eventually(stack.settled, Boolean)).toBe(true);

    expect(await stack.tierInAuth(user.userId)).toBe("power");
    expect((await stack.streamEvents(user.userId)).map(({ tier }) => tier)).toEqual(["pro", "power"]);
    const refreshed = await stack.refresh(user.refreshToken);
    expect(tierClaim(await accessTokenOf(refreshed))).toBe("power");
  });
});
