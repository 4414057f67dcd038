// Failure of instances and of Redis. Strategy: the instance that crashes runs in a subprocess
// (test/chat/gateway/fixtures/chat-instance.ts) and is killed with SIGKILL, so it gets no chance
// to clean up: its leases and liveness mark must expire on their own (default TTLs, as in
// production). Redis outages go through a TcpProxy in front of the real Redis, used by both
// instances; a restart is simulated by cutting the proxy, deleting the test's keys and the script
// cache (what a restart of a non-persistent Redis loses), then restoring the proxy.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import {
  createTestContext,
  deleteKeysWithPrefix,
  eventually,
  TcpProxy,
  TEST_REDIS_TOPOLOGY,
  type TestContext,
  viaProxy,
} from "../../../src/shared/testing";
import { type ChatInstance, connectDevice, reason, spawnChatInstance, startChat } from "./helpers";

let ctx: TestContext;
let b: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  b = await startChat(ctx);
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

const spawnInstance = () => spawnChatInstance(ctx);

describe("instance failure", () => {
  test("killing the device's instance fails calls in flight, clears presence, and the device moves on", async () => {
    const a = await spawnInstance();
    const userId = user();
    let target = a.url;
    let received = 0;
    const device = await connectDevice(ctx, {
      url: () => target,
      userId,
      tools: {
        fs_list_dir: () => {
          received += 1;
          return new Promise(() => {});
        },
        task_list: () => ({ tasks: [] }),
      },
    });
    const calls = Array.from({ length: 5 }, () =>
      reason(b.gateway.rpc.call({ userId, name: "fs_list_dir", args: { path: "/" }, deadlineMs: 25_000 })),
    );
    await eventually(
      () => received,
      (count) => count === 5,
    );
    a.child.kill("SIGKILL");
    await a.child.exited;
    expect(await Promise.all(calls)).toEqual(Array(5).fill("device_disconnected"));
    expect(
      await eventually(
        () => b.gateway.rpc.isOnline(userId),
        (online) => !online,
      ),
    ).toBe(false);
    const { promise: welcomed, resolve } = Promise.withResolvers<void>();
    device.on("welcome", () => resolve());
    target = b.wsUrl;
    await welcomed;
    expect(await b.gateway.rpc.call({ userId, name: "task_list", args: {} })).toEqual({ tasks: [] });
  }, 30_000);

  test("a reconnect to B while A still holds the old socket: calls go to B, A's late close keeps B's lease", async () => {
    const a = await startChat(ctx);
    const userId = user();
    const answer = (who: string) => ({ task_list: () => who });
    const old = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: answer("old") });
    await connectDevice(ctx, { url: b.wsUrl, userId, deviceId: "laptop", tools: answer("new") });
    expect(await a.gateway.rpc.call({ userId, deviceId: "laptop", name: "task_list", args: {} })).toBe("new");
    expect(await b.gateway.rpc.call({ userId, name: "task_list", args: {} })).toBe("new");
    old.close();
    await eventually(
      () => a.gateway.connectionCount(),
      (count) => count === 0,
    );
    const devices = await a.gateway.rpc.devices(userId);
    expect(devices.map((device) => [device.deviceId, device.instanceId])).toEqual([["laptop", b.platform.instanceId]]);
    expect(await a.gateway.rpc.call({ userId, name: "task_list", args: {} })).toBe("new");
  });

  test("stopping an instance closes its sockets with 1001 and fails calls through them", async () => {
    const c = await startChat(ctx);
    const userId = user();
    let received = 0;
    const device = await connectDevice(ctx, {
      url: c.wsUrl,
      userId,
      tools: {
        fs_read_file: () => {
          received += 1;
          return new Promise(() => {});
        },
      },
    });
    const { promise: closed, resolve } = Promise.withResolvers<{
      code: number;
      reason: string;
      willReconnect: boolean;
    }>();
    device.on("close", resolve);
    const remote = reason(b.gateway.rpc.call({ userId, name: "fs_read_file", args: { path: "/a" } }));
    const local = reason(c.gateway.rpc.call({ userId, name: "fs_read_file", args: { path: "/b" } }));
    await eventually(
      () => received,
      (count) => count === 2,
    );
    await c.stop();
    expect(await Promise.all([remote, local])).toEqual(["device_disconnected", "device_disconnected"]);
    expect(await closed).toEqual({ code: 1001, reason: "going away", willReconnect: true });
  });
});

// The outage is a TcpProxy in front of the one Redis node of REDIS_URL: a Sentinel group or a Cluster
// has no single address to cut, so these run only when the tests run on one node.
const singleNode = TEST_REDIS_TOPOLOGY.kind === "single";
const outageSkipped = singleNode
  ? ""
  : ` (skipped: needs one Redis node, the tests run on ${TEST_REDIS_TOPOLOGY.kind})`;
if (!singleNode) console.log(`redis outage tests${outageSkipped}`);

describe.skipIf(!singleNode)(`redis outage${outageSkipped}`, () => {
  test("Redis restarts: clear errors while down, subscriptions and leases come back, calls work again", async () => {
    const redisPort = Number(new URL(ctx.redisUrl).port || 6379);
    const proxy = new TcpProxy("127.0.0.1", redisPort);
    proxy.start();
    ctx.defer(() => proxy.stop());
    const env = {
      REDIS_URL: viaProxy(ctx.redisUrl, proxy.port),
      DEVICE_LEASE_TTL_MS: "1500",
      DEVICE_INSTANCE_TTL_MS: "1000",
    };
    const d = await startChat(ctx, { env });
    const e = await startChat(ctx, { env });
    const userId = user();
    const device = await connectDevice(ctx, { url: d.wsUrl, userId, tools: { task_list: () => "ok" } });
    expect(await e.gateway.rpc.call({ userId, name: "task_list", args: {} })).toBe("ok");

    proxy.cut();
    const admin = new Redis(ctx.redisUrl);
    await deleteKeysWithPrefix(ctx.keyPrefix);
    await admin.script("FLUSH");
    admin.disconnect();
    expect(await reason(e.gateway.rpc.call({ userId, name: "task_list", args: {}, deadlineMs: 3000 }))).toBe(
      "rpc_unavailable",
    );
    expect(await e.gateway.rpc.isOnline(userId).catch(() => "error")).toBe("error");

    proxy.resume();
    const result = await eventually(
      () => reason(e.gateway.rpc.call({ userId, name: "task_list", args: {}, deadlineMs: 1000 })),
      (outcome) => outcome === "resolved",
      15_000,
      100,
    );
    expect(result).toBe("resolved");
    const chunks: number[] = [];
    device.on("chat_chunk", (chunk) => chunks.push(chunk.seq));
    // Calls and pushes use different Redis connections, each restoring its subscriptions on its own
    // schedule: a push nobody took (0) was not delivered anywhere, so it is simply sent again.
    await eventually(
      () => e.gateway.push.push(userId, { type: "chat_chunk", request_id: "r", chat_id: "c", seq: 7, chunk: {} }),
      (receivers) => receivers > 0,
      10_000,
      100,
    );
    expect(
      await eventually(
        () => chunks,
        (seen) => seen.length === 1,
      ),
    ).toEqual([7]);
  }, 30_000);

  // The default TTLs, as in production: a 10 s outage outlives the owner's liveness mark (5 s).
  for (const outageMs of [2000, 10_000]) {
    test(
      `a device's answer given during a ${outageMs / 1000} s outage reaches its caller once Redis is back`,
      async () => {
        const proxy = new TcpProxy("127.0.0.1", Number(new URL(ctx.redisUrl).port || 6379));
        proxy.start();
        ctx.defer(() => proxy.stop());
        const env = { REDIS_URL: viaProxy(ctx.redisUrl, proxy.port) };
        const owner = await startChat(ctx, { env });
        const caller = await startChat(ctx, { env });
        const userId = user();
        const { promise: asked, resolve: onAsked } = Promise.withResolvers<(value: unknown) => void>();
        await connectDevice(ctx, {
          url: owner.wsUrl,
          userId,
          tools: { fs_read_file: () => new Promise((answer) => onAsked(answer)) },
        });
        const call = caller.gateway.rpc.call({
          userId,
          name: "fs_read_file",
          args: { path: "/notes.md" },
          deadlineMs: outageMs + 8000,
        });
        const settled = reason(call).then((outcome) => ({ outcome, at: performance.now() }));
        const answer = await asked;
        proxy.cut();
        answer({ content: "hello" });
        await Bun.sleep(outageMs); // the outage itself, not a wait for a condition
        proxy.resume();
        const back = performance.now();
        const { outcome, at } = await settled;
        expect({ outcome, result: await call.catch(() => undefined) }).toEqual({
          outcome: "resolved",
          result: { content: "hello" },
        });
        expect(at - back).toBeLessThan(5000);
      },
      outageMs + 20_000,
    );
  }
});
