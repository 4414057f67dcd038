// The lookup the chat service makes, end to end through the real queue on the real Redis: a
// platform standing in for a chat instance puts lookups on `openPluginToolsQueue` and listens on
// its own reply channel, as src/shared/plugin-tools.ts says; the plugins service answers with the
// user's usable plugins. Nothing of the chat service runs here: its side is the contract alone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { installs, purchases, versions } from "../../src/plugins/tables";
import type { Platform } from "../../src/shared/platform";
import {
  openPluginToolsQueue,
  type PluginToolsJob,
  type PluginToolsQueue,
  PluginToolsReply,
} from "../../src/shared/plugin-tools";
import { eventually } from "../../src/shared/testing";
import { type Developer, manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
let dev: Developer;
let chat: Platform;
let queue: PluginToolsQueue;
const replies = new Map<string, PluginToolsReply>();

beforeAll(async () => {
  p = await startPlugins({ env: { PLUGIN_CALLS_PER_MINUTE: "42", PLUGIN_CALL_TIMEOUT_MS: "7000" } });
  dev = await p.developer();
  chat = await p.ctx.platform({ service: "chat" });
  queue = openPluginToolsQueue(chat);
  p.ctx.defer(() => queue.close());
  const stop = await chat.bus.subscribe(chat.keys.pluginToolsReplies(chat.instanceId), (message) => {
    const reply = PluginToolsReply.parse(JSON.parse(message));
    replies.set(reply.requestId, reply);
  });
  p.ctx.defer(stop);
});
afterAll(() => p.ctx.close());

/** A lookup as a chat turn makes it: the reply, or undefined when none came within `waitMs`. */
async function lookup(userId: string, overrides: Partial<PluginToolsJob> = {}, waitMs = 5000) {
  const requestId = crypto.randomUUID();
  await queue.add(requestId, {
    userId,
    tier: "free",
    replyTo: chat.instanceId,
    requestId,
    expiresAt: Date.now() + 10_000,
    ...overrides,
  } as PluginToolsJob);
  return eventually(
    async () => replies.get(requestId),
    (reply) => reply !== undefined,
    waitMs,
    10,
  ).catch(() => undefined);
}

describe("the user's plugin tools", () => {
  test("remote plugins for the agent and local ones for the device, each with exactly what was granted", async () => {
    const remote = manifest({
      name: "Remote",
      slug: `remote-${crypto.randomUUID().slice(0, 6)}`,
      endpoint: "http://127.0.0.1:9/mcp",
      limits: { callsPerMinute: 5 },
    });
    const local = manifest({ name: "Local", slug: `local-${crypto.randomUUID().slice(0, 6)}`, local: true });
    const remoteId = await p.publishLive(dev, remote);
    const localId = await p.publishLive(dev, local);
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, remoteId, { device_tools: ["task_list"], origins: [], data: ["profile"] });
    await p.install(token, localId, { device_tools: [], origins: ["https://api.weather.example"], data: [] });
    // Someone else's plugins never show.
    await p.install(await p.token(newUserId()), await p.publishLive(dev, manifest()));

    const reply = await lookup(userId);
    expect(reply).toEqual({
      requestId: expect.any(String),
      plugins: [
        {
          pluginId: remoteId,
          slug: remote.slug as string,
          version: "1.0.0",
          endpoint: "http://127.0.0.1:9/mcp",
          tools: [
            { name: "forecast", description: "The forecast for a place" },
            { name: "alerts", description: "Weather alerts" },
          ],
          grants: { deviceTools: ["task_list"], origins: [], data: ["profile"] },
          // The manifest's own rate, the deployment's deadline (PLUGIN_CALL_TIMEOUT_MS).
          limits: { callsPerMinute: 5, timeoutMs: 7000 },
        },
      ],
      local: [
        {
          pluginId: localId,
          slug: local.slug as string,
          version: "1.0.0",
          package: { url: "https://cdn.example.com/weather.tgz", sha256: "a".repeat(64) },
          tools: expect.any(Array),
          grants: { deviceTools: [], origins: ["https://api.weather.example"], data: [] },
        },
      ],
    });
  });

  test("a user with nothing installed gets empty lists; defaults come from the environment", async () => {
    expect(await lookup(newUserId())).toEqual({ requestId: expect.any(String), plugins: [], local: [] });
    const id = await p.publishLive(dev, manifest());
    const userId = newUserId();
    await p.install(await p.token(userId), id);
    const reply = await lookup(userId);
    expect(reply?.plugins?.[0]?.limits).toEqual({ callsPerMinute: 42, timeoutMs: 7000 });
  });

  test("a suspended plugin stops being offered at once, and comes back when lifted; an uninstalled one goes", async () => {
    const id = await p.publishLive(dev, manifest());
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, id);
    expect((await lookup(userId))?.plugins?.map((each) => each.pluginId)).toEqual([id]);
    const admin = await p.adminToken();
    await p.call("POST", `/admin/plugins/${id}/suspend`, { token: admin, body: { reason: "investigating" } });
    expect((await lookup(userId))?.plugins).toEqual([]);
    await p.call("POST", `/admin/plugins/${id}/unsuspend`, { token: admin });
    expect((await lookup(userId))?.plugins?.map((each) => each.pluginId)).toEqual([id]);
    await p.call("DELETE", `/installs/${id}`, { token });
    expect((await lookup(userId))?.plugins).toEqual([]);
  });

  test("the installed version is what is offered until the user accepts a newer one asking for more", async () => {
    const body = manifest({ deviceTools: [], origins: [], data: [] });
    const id = await p.publishLive(dev, body);
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, id, { device_tools: [], origins: [], data: [] });
    await p.releaseVersion(
      dev,
      id,
      manifest({ slug: body.slug as string, version: "2.0.0", deviceTools: ["fs_read_file"], origins: [], data: [] }),
    );
    expect((await lookup(userId))?.plugins?.[0]).toMatchObject({ version: "1.0.0", grants: { deviceTools: [] } });
    await p.call("POST", `/installs/${id}/upgrade`, {
      token,
      body: { grants: { device_tools: ["fs_read_file"], origins: [], data: [] } },
    });
    expect((await lookup(userId))?.plugins?.[0]).toMatchObject({
      version: "2.0.0",
      grants: { deviceTools: ["fs_read_file"] },
    });
  });

  test("a paid plugin is offered only with an entitlement attached to its install", async () => {
    const id = await p.publishLive(dev, manifest({ pricing: { model: "monthly", amount: 500, currency: "eur" } }));
    const userId = newUserId();
    // The rows a payment writes (test/plugins/payments.test.ts makes them through Stripe), made here directly.
    const { db } = p.server.platform;
    const [version] = await db.select({ id: versions.id }).from(versions).where(eq(versions.pluginId, id));
    const purchaseId = crypto.randomUUID();
    await db.insert(purchases).values({
      id: purchaseId,
      userId,
      pluginId: id,
      versionId: version?.id as string,
      version: "1.0.0",
      model: "monthly",
      amount: 500,
      currency: "eur",
      platformFee: 100,
      checkoutSessionId: `cs_test_${purchaseId}`,
      subscriptionId: `sub_${purchaseId}`,
      lastOccurredAt: new Date(),
    });
    await db.insert(installs).values({
      id: crypto.randomUUID(),
      userId,
      pluginId: id,
      versionId: version?.id as string,
      grantedDeviceTools: [],
      grantedOrigins: [],
      grantedData: [],
      tier: "pro",
    });
    expect((await lookup(userId))?.plugins).toEqual([]);
    expect((await p.call("GET", "/installs", { token: await p.token(userId, "pro") })).body.items[0]).toMatchObject({
      available: false,
      unavailable_reason: { code: "payment_required" },
    });
    await db
      .update(installs)
      .set({ entitlementId: purchaseId })
      .where(and(eq(installs.userId, userId), eq(installs.pluginId, id)));
    expect((await lookup(userId))?.plugins?.map((each) => each.pluginId)).toEqual([id]);
  });
});

describe("the user's tier", () => {
  test("a plugin whose installed version is not for the lookup's tier is left out, remote and local, without a word", async () => {
    const proRemote = await p.publishLive(dev, manifest({ tiers: ["pro", "power", "team"] }));
    const proLocal = await p.publishLive(dev, manifest({ local: true, tiers: ["pro"] }));
    const everyone = await p.publishLive(dev, manifest());
    const userId = newUserId();
    const pro = await p.token(userId, "pro");
    for (const id of [proRemote, proLocal, everyone]) expect((await p.install(pro, id)).status).toBe(201);
    const ids = (reply: PluginToolsReply | undefined) => ({
      plugins: (reply?.plugins ?? []).map((each) => each.pluginId).sort(),
      local: (reply?.local ?? []).map((each) => each.pluginId),
      error: reply?.error,
    });

    expect(ids(await lookup(userId, { tier: "pro" }))).toEqual({
      plugins: [proRemote, everyone].sort(),
      local: [proLocal],
      error: undefined,
    });
    // The same user after moving to free: the installs stay, the lookup leaves them out.
    expect(ids(await lookup(userId, { tier: "free" }))).toEqual({ plugins: [everyone], local: [], error: undefined });
    expect(ids(await lookup(userId, { tier: "power" }))).toEqual({
      plugins: [proRemote, everyone].sort(),
      local: [],
      error: undefined,
    });
    const rows = await p.server.platform.db.select().from(installs).where(eq(installs.userId, userId));
    expect(rows).toHaveLength(3);
  });

  test("the installed version's tiers decide, not the live version's", async () => {
    const body = manifest({ tiers: ["pro"], deviceTools: [], origins: [], data: [] });
    const id = await p.publishLive(dev, body);
    const userId = newUserId();
    await p.install(await p.token(userId, "pro"), id, { device_tools: [], origins: [], data: [] });
    // 2.0.0 is for free users too, but asks for more: the install stays on 1.0.0 until consent.
    await p.releaseVersion(
      dev,
      id,
      manifest({
        slug: body.slug as string,
        version: "2.0.0",
        tiers: ["free", "pro"],
        deviceTools: ["task_list"],
        origins: [],
        data: [],
      }),
    );
    expect((await lookup(userId, { tier: "free" }))?.plugins).toEqual([]);
    expect((await lookup(userId, { tier: "pro" }))?.plugins?.map((each) => each.version)).toEqual(["1.0.0"]);
  });

  test("a lookup without a tier, or with one that is no tier, is not answered", async () => {
    const id = await p.publishLive(dev, manifest());
    const userId = newUserId();
    await p.install(await p.token(userId), id);
    expect(await lookup(userId, { tier: undefined }, 1000)).toBeUndefined();
    expect(await lookup(userId, { tier: "gold" as never }, 1000)).toBeUndefined();
    expect((await lookup(userId, { tier: "free" }))?.plugins?.map((each) => each.pluginId)).toEqual([id]);
  });
});

describe("the queue", () => {
  test("a lookup past its deadline is dropped unanswered; malformed ones too; the next is answered", async () => {
    const userId = newUserId();
    expect(await lookup(userId, { expiresAt: Date.now() - 1 }, 1000)).toBeUndefined();
    expect(await lookup("", {}, 1000)).toBeUndefined();
    expect(
      await eventually(
        () => queue.counts(),
        (counts) => counts.waiting + counts.active === 0,
      ),
    ).toEqual({
      waiting: 0,
      active: 0,
    });
    expect(await lookup(userId)).toEqual({ requestId: expect.any(String), plugins: [], local: [] });
    const metrics = await p.server.platform.metrics.registry.getSingleMetricAsString("plugins_tool_lookups_total");
    expect(metrics).toContain('outcome="expired"');
    expect(metrics).toContain('outcome="failed"');
    expect(metrics).toContain('outcome="answered"');
  });

  test("the reply goes to the asking instance only", async () => {
    const other = await p.ctx.platform({ service: "chat" });
    const elsewhere: string[] = [];
    const stop = await other.bus.subscribe(other.keys.pluginToolsReplies(other.instanceId), (message) =>
      elsewhere.push(message),
    );
    p.ctx.defer(stop);
    expect(await lookup(newUserId())).toBeDefined();
    expect(elsewhere).toEqual([]);
  });
});
