// Tier changes from billing reach auth through the durable stream. Events are produced with
// billing's own `publishTierChanged`, on a separate platform standing in for the billing service.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import postgres from "postgres";
import { publishTierChanged, TierChangedEvent } from "../../src/shared/events/tier-changed";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { get, PASSWORD, post, registerUser, type SessionBody, startAuth } from "./helpers";

let ctx: TestContext;
let base: string;
let metricsUrl: string;
let billing: Platform;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  const auth = await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } });
  base = auth.url;
  metricsUrl = auth.metricsUrl;
  billing = await ctx.platform({ service: "billing" });
  sql = postgres(ctx.databaseUrl, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
  await ctx.close();
});

const change = (userId: string, tier: TierChangedEvent["tier"], occurredAt: number): TierChangedEvent => ({
  eventId: crypto.randomUUID(),
  userId,
  tier,
  reason: "test",
  occurredAt,
});
const tierOf = async (userId: string) => (await sql`select tier from auth.users where id = ${userId}`)[0]?.tier;
/** Waits until the user's tier is `tier` (or time runs out) and returns the last value seen. */
const becomes = (userId: string, tier: string) =>
  eventually(
    () => tierOf(userId),
    (value) => value === tier,
  );
const live = async (userId: string) =>
  Number(
    (await sql`select count(*) from auth.refresh_tokens where user_id = ${userId} and revoked_at is null`)[0]?.count,
  );

describe("tier-changed consumer", () => {
  test("an upgrade updates users.tier and reaches the next access token; sessions survive", async () => {
    const session = await registerUser(base);
    await publishTierChanged(billing, change(session.user.id, "pro", Date.now()));
    expect(await becomes(session.user.id, "pro")).toBe("pro");
    const refreshed = await post(base, "/refresh", { refresh_token: session.refresh_token });
    expect(refreshed.status).toBe(200);
    const me = await get(base, "/me", ((await refreshed.json()) as SessionBody).access_token);
    expect(((await me.json()) as { tier: string }).tier).toBe("pro");
  });

  test("a downgrade ends the user's sessions: refresh tokens and the access tokens issued with them", async () => {
    const session = await registerUser(base);
    const now = Date.now();
    await publishTierChanged(billing, change(session.user.id, "power", now));
    await eventually(
      () => tierOf(session.user.id),
      (tier) => tier === "power",
    );
    await publishTierChanged(billing, change(session.user.id, "free", now + 1));
    await eventually(
      () => tierOf(session.user.id),
      (tier) => tier === "free",
    );
    expect(await live(session.user.id)).toBe(0);
    expect((await post(base, "/refresh", { refresh_token: session.refresh_token })).status).toBe(401);
    // The revocation is announced after the commit: the old access token stops working shortly after.
    expect(
      await eventually(
        async () => (await get(base, "/me", session.access_token)).status,
        (status) => status === 401,
      ),
    ).toBe(401);
    const again = await post(
      base,
      "/login",
      { email: session.user.email, password: PASSWORD },
      { "x-forwarded-for": "10.1.2.3" },
    );
    expect(((await again.json()) as SessionBody).user.tier).toBe("free");
  });

  test("events older than the last applied one, and redeliveries, change nothing", async () => {
    const session = await registerUser(base);
    const now = Date.now();
    const latest = change(session.user.id, "team", now);
    await publishTierChanged(billing, latest);
    await eventually(
      () => tierOf(session.user.id),
      (tier) => tier === "team",
    );
    await publishTierChanged(billing, change(session.user.id, "free", now - 1000));
    await publishTierChanged(billing, latest);
    // A later marker event proves the stale ones were consumed (the stream is ordered).
    const other = await registerUser(base);
    await publishTierChanged(billing, change(other.user.id, "pro", now));
    await eventually(
      () => tierOf(other.user.id),
      (tier) => tier === "pro",
    );
    expect(await tierOf(session.user.id)).toBe("team");
    expect(await live(session.user.id)).toBe(1);
  });

  test("an applied change is announced on tier_changed:{user_id} after it is committed; a stale one is not", async () => {
    const session = await registerUser(base);
    const marker = await registerUser(base);
    const listener = new Redis(ctx.redisUrl);
    const heard: Array<{ userId: string; tier: string; tierInAuth: string }> = [];
    try {
      listener.on("message", async (_channel: string, message: string) => {
        const event = TierChangedEvent.parse(JSON.parse(message));
        heard.push({ userId: event.userId, tier: event.tier, tierInAuth: await tierOf(event.userId) });
      });
      await listener.subscribe(billing.keys.tierChanged(session.user.id), billing.keys.tierChanged(marker.user.id));
      const now = Date.now();
      await publishTierChanged(billing, change(session.user.id, "pro", now));
      await eventually(
        () => heard.length,
        (n) => n === 1,
      );
      await publishTierChanged(billing, change(session.user.id, "free", now - 1000));
      // Auth announces on one connection, in order: the marker's announcement comes after any other.
      await publishTierChanged(billing, change(marker.user.id, "power", now));
      await eventually(
        () => heard.length,
        (n) => n === 2,
      );
      expect(heard).toEqual([
        { userId: session.user.id, tier: "pro", tierInAuth: "pro" },
        { userId: marker.user.id, tier: "power", tierInAuth: "power" },
      ]);
    } finally {
      listener.disconnect();
    }
  });

  test("/metrics reports the tier changes auth has been given and not applied", async () => {
    const session = await registerUser(base);
    await publishTierChanged(billing, change(session.user.id, "pro", Date.now()));
    expect(await becomes(session.user.id, "pro")).toBe("pro");
    const scrape = async () =>
      (await (await fetch(metricsUrl)).text()).match(/^auth_tier_events_pending(?:\{[^}]*\})? (\d+)$/m)?.[1];
    expect(await eventually(scrape, (value) => value === "0")).toBe("0");
  });

  test("events for unknown users or malformed ones do not block the stream", async () => {
    await publishTierChanged(billing, change("not-a-uuid", "pro", Date.now()));
    await publishTierChanged(billing, change(crypto.randomUUID(), "pro", Date.now()));
    await billing.redis!.xadd(billing.keys.tierChangedStream, "*", "event", "{not json");
    const session = await registerUser(base);
    await publishTierChanged(billing, change(session.user.id, "pro", Date.now()));
    expect(await becomes(session.user.id, "pro")).toBe("pro");
  });
});

describe("while auth is down", () => {
  test("events produced meanwhile are applied when it starts", async () => {
    const down = await createTestContext();
    try {
      const first = await startAuth(down);
      const session = await registerUser(first.url);
      await first.stop();
      const producer = await down.platform({ service: "billing" });
      await publishTierChanged(producer, change(session.user.id, "power", Date.now()));
      const db = postgres(down.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const before = (await db`select tier from auth.users where id = ${session.user.id}`)[0]?.tier;
        expect(before).toBe("free");
        await startAuth(down);
        const after = await eventually(
          async () => (await db`select tier from auth.users where id = ${session.user.id}`)[0]?.tier,
          (tier) => tier === "power",
        );
        expect(after).toBe("power");
      } finally {
        await db.end();
      }
    } finally {
      await down.close();
    }
  });

  test("embedded mode (no Redis): the in-process log carries the event from producer to auth", async () => {
    const embedded = await createTestContext();
    try {
      const server = await startAuth(embedded, { redis: false });
      const session = await registerUser(server.url);
      await publishTierChanged(server.platform, change(session.user.id, "pro", Date.now()));
      const tier = await eventually(
        async () => ((await (await get(server.url, "/me", session.access_token)).json()) as { tier: string }).tier,
        (value) => value === "pro",
      );
      expect(tier).toBe("pro");
    } finally {
      await embedded.close();
    }
  });
});
