// Account deletion and data export for the plugins service: the events on the real Redis Streams
// (user_deleted in, user_erased out; export_requested in, export_parts out), and what the erasure
// leaves: nothing of the user, counters of other plugins corrected, the developer's plugins gone
// with the installs and reviews other users had of them (whose chats are told).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { pluginRows } from "../../src/plugins/tables";
import { publishUserDeleted } from "../../src/shared/events/user-deleted";
import { eventually } from "../../src/shared/testing";
import { exportPartOf, keyPair, manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
beforeAll(async () => {
  p = await startPlugins();
});
afterAll(() => p.ctx.close());

/** Rows of the user in every table of the plugins schema with a user_id, and the developer's plugins. */
async function rowsOf(userId: string) {
  const { db } = p.server.platform;
  const count = async (query: ReturnType<typeof sql>) =>
    Number(((await db.execute(query)) as unknown as Array<{ n: number }>)[0]?.n);
  return {
    developers: await count(sql`select count(*)::int as n from plugins.developers where user_id = ${userId}`),
    plugins: await count(sql`select count(*)::int as n from plugins.plugins where developer_id = ${userId}`),
    installs: await count(sql`select count(*)::int as n from plugins.installs where user_id = ${userId}`),
    reviews: await count(sql`select count(*)::int as n from plugins.reviews where user_id = ${userId}`),
    reports: await count(sql`select count(*)::int as n from plugins.review_reports where user_id = ${userId}`),
  };
}

const counters = async (id: string) => {
  const [row] = await p.server.platform.db.select().from(pluginRows).where(eq(pluginRows.id, id));
  return { installs: row?.installCount, ratings: row?.ratingCount, sum: row?.ratingSum };
};

/** A user who is a developer with a live plugin, installed another one, reviewed and reported. */
async function fullUser() {
  const market = await p.developer();
  const marketId = await p.publishLive(market, manifest());
  const userId = newUserId();
  const token = await p.token(userId, "team");
  const keys = keyPair();
  await p.call("POST", "/developers/me", { token, body: { display_name: "Leaving", public_key: keys.publicKey } });
  const self = { userId, token, ...keys };
  const ownBody = manifest({ name: "Mine" });
  const ownId = await p.publishLive(self, ownBody);
  await p.install(token, marketId, { device_tools: ["task_list"], origins: [], data: [] });
  await p.call("POST", `/catalog/${marketId}/reviews`, { token, body: { rating: 2, text: "meh" } });
  // Someone else reviewed the market plugin; the user reports it.
  const otherToken = await p.token(newUserId());
  await p.install(otherToken, marketId);
  const otherReview = await p.call("POST", `/catalog/${marketId}/reviews`, { token: otherToken, body: { rating: 5 } });
  await p.call("POST", `/catalog/${marketId}/reviews/${otherReview.body.id}/report`, {
    token,
    body: { reason: "spam" },
  });
  // Another user relies on the user's own plugin.
  const fanId = newUserId();
  const fan = await p.token(fanId);
  await p.install(fan, ownId);
  await p.call("POST", `/catalog/${ownId}/reviews`, { token: fan, body: { rating: 5 } });
  return { userId, token, marketId, ownId, ownBody, fanId, otherReviewId: otherReview.body.id as string };
}

describe("erasure", () => {
  test("user_deleted erases every row of the user, corrects the counters, tells affected users; reported on user_erased", async () => {
    const world = await fullUser();
    expect(await rowsOf(world.userId)).toEqual({ developers: 1, plugins: 1, installs: 1, reviews: 1, reports: 1 });
    expect(await counters(world.marketId)).toEqual({ installs: 2, ratings: 2, sum: 7 });
    const heard: string[] = [];
    const { bus, keys, redis } = p.server.platform;
    p.ctx.defer(await bus.subscribe(keys.pluginsChanged(world.fanId), (message) => heard.push(message)));

    await publishUserDeleted(p.server.platform, { userId: world.userId, deletedAt: Date.now() });
    expect(
      await eventually(
        () => rowsOf(world.userId),
        (rows) => Object.values(rows).every((n) => n === 0),
      ),
    ).toEqual({ developers: 0, plugins: 0, installs: 0, reviews: 0, reports: 0 });
    expect(await counters(world.marketId)).toEqual({ installs: 1, ratings: 1, sum: 5 });
    const [report] = (await p.server.platform.db.execute(
      sql`select report_count from plugins.reviews where id = ${world.otherReviewId}`,
    )) as unknown as Array<{ report_count: number }>;
    expect(report?.report_count).toBe(0);
    // The fan's install of the user's plugin went with it, and the fan's chat heard.
    expect(await rowsOf(world.fanId)).toMatchObject({ installs: 0, reviews: 0 });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([JSON.stringify({ userId: world.fanId, pluginId: world.ownId, reason: "removed" })]);
    const erased = await eventually(
      async () => ((await redis?.xrange(keys.userErasedStream, "-", "+")) ?? []).map(([, fields]) => fields[1]),
      (entries) => entries.some((entry) => entry?.includes(world.userId)),
    );
    expect(erased.filter((entry) => entry?.includes(world.userId))).toEqual([
      JSON.stringify({ userId: world.userId, service: "plugins" }),
    ]);
    // The slug is free again.
    const again = await p.developer();
    expect((await p.create(again, manifest({ slug: world.ownBody.slug as string }))).status).toBe(201);
  });

  test("a second delivery, or a user with nothing here, erases nothing more and is reported all the same", async () => {
    const world = await fullUser();
    const nobody = newUserId();
    const { redis, keys } = p.server.platform;
    const reports = async (userId: string) =>
      ((await redis?.xrange(keys.userErasedStream, "-", "+")) ?? []).filter(([, fields]) => fields[1]?.includes(userId))
        .length;
    await publishUserDeleted(p.server.platform, { userId: world.userId, deletedAt: Date.now() });
    await eventually(
      () => reports(world.userId),
      (n) => n === 1,
    );
    const after = await counters(world.marketId);
    await publishUserDeleted(p.server.platform, { userId: world.userId, deletedAt: Date.now() });
    await publishUserDeleted(p.server.platform, { userId: nobody, deletedAt: Date.now() });
    expect(
      await eventually(
        () => reports(world.userId),
        (n) => n === 2,
      ),
    ).toBe(2);
    expect(
      await eventually(
        () => reports(nobody),
        (n) => n === 1,
      ),
    ).toBe(1);
    expect(await counters(world.marketId)).toEqual(after);
    expect(after).toEqual({ installs: 1, ratings: 1, sum: 5 });
  });
});

describe("export", () => {
  test("the part holds the developer account, plugins with versions as signed, installs, reviews and reports", async () => {
    const world = await fullUser();
    const part = await exportPartOf(p.server.platform, world.userId);
    expect(part).toMatchObject({ userId: world.userId, service: "plugins" });
    const data = JSON.parse(part.json as string);
    expect(data.developer).toMatchObject({ display_name: "Leaving", public_key: expect.any(String) });
    expect(data.plugins).toEqual([
      expect.objectContaining({ id: world.ownId, name: "Mine", status: "published", suspended: false }),
    ]);
    expect(data.plugins[0].versions).toEqual([
      expect.objectContaining({ version: "1.0.0", status: "published", manifest: world.ownBody }),
    ]);
    expect(data.installs).toEqual([
      expect.objectContaining({
        plugin_id: world.marketId,
        version: "1.0.0",
        grants: { device_tools: ["task_list"], origins: [], data: [] },
      }),
    ]);
    expect(data.reviews).toEqual([expect.objectContaining({ plugin_id: world.marketId, rating: 2, text: "meh" })]);
    expect(data.reports).toEqual([expect.objectContaining({ review_id: world.otherReviewId, reason: "spam" })]);
    // Nothing of other users: the fan's review of the user's plugin is not the user's data.
    expect(JSON.stringify(data)).not.toContain(world.fanId);
  });
});
