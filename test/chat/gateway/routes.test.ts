// Remembered routes of the device RPC: a caller reuses the owner it found with a plain PUBLISH and
// must never let that memory change what a call does. Two real chat instances (A and B) on one
// Redis, real SDK devices; the caller is an RPC endpoint without sockets (as the agent service),
// with a long route lifetime so every check below runs while the route is remembered.
import { afterAll, beforeAll, expect, spyOn, test } from "bun:test";
import { createRpcNode, type RpcNode } from "../../../src/shared/device-rpc/node";
import { RedisPresence } from "../../../src/shared/presence/redis-presence";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { type ChatInstance, connectDevice, reason, startChat } from "./helpers";

let ctx: TestContext;
let a: ChatInstance;
let b: ChatInstance;
let caller: RpcNode;

beforeAll(async () => {
  ctx = await createTestContext();
  a = await startChat(ctx);
  b = await startChat(ctx);
  caller = createRpcNode(await ctx.platform({ service: "agent" }), { routeTtlMs: 60_000 });
  await caller.start();
  ctx.defer(() => caller.stop());
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

test("the owner found once is reused: later calls skip presence and still reach the device", async () => {
  const userId = user();
  let calls = 0;
  await connectDevice(ctx, { url: a.wsUrl, userId, tools: { task_list: () => ++calls } });
  const before = caller.caller.routeCount;
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe(1);
  expect(caller.caller.routeCount).toBe(before + 1);
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => caller.call({ userId, name: "task_list", args: {} })),
  );
  expect(answers.sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
});

test("the device connects again elsewhere while its old socket is open: calls go to the new socket", async () => {
  const userId = user();
  const answer = (who: string) => ({ task_list: () => who });
  await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: answer("old") });
  expect(await caller.call({ userId, deviceId: "laptop", name: "task_list", args: {} })).toBe("old");
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe("old");
  const routes = caller.caller.routeCount;
  await connectDevice(ctx, { url: b.wsUrl, userId, deviceId: "laptop", tools: answer("new") });
  // The new lease is announced before `welcome`; the announcement drops both routes of the user.
  await eventually(
    () => caller.caller.routeCount,
    (count) => count === routes - 2,
  );
  expect(await caller.call({ userId, deviceId: "laptop", name: "task_list", args: {} })).toBe("new");
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe("new");
});

test("the remembered connection is gone: the call is routed anew, device_offline when nothing is left", async () => {
  const userId = user();
  const device = await connectDevice(ctx, { url: a.wsUrl, userId, tools: { task_list: () => "here" } });
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe("here");
  const remembered = caller.caller.routeCount;

  // Closed for good: no announcement, the route still points at A's dead connection.
  device.close();
  await eventually(
    () => caller.isOnline(userId),
    (online) => !online,
  );
  expect(caller.caller.routeCount).toBe(remembered);
  const started = performance.now();
  expect(await reason(caller.call({ userId, name: "task_list", args: {} }))).toBe("device_offline");
  expect(performance.now() - started).toBeLessThan(100);
  expect(caller.caller.routeCount).toBe(remembered - 1);

  // A second device of the user on B, then a stale route to A: the call is re-routed to B.
  await connectDevice(ctx, { url: b.wsUrl, userId, deviceId: "phone", tools: { task_list: () => "phone" } });
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe("phone");
});

test("an owner that stops: a route to it fails fast with device_offline, then calls reach the device elsewhere", async () => {
  const c = await startChat(ctx);
  const userId = user();
  let target = c.wsUrl;
  await connectDevice(ctx, { url: () => target, userId, tools: { task_list: () => "answered" } });
  expect(await caller.call({ userId, name: "task_list", args: {} })).toBe("answered");
  const remembered = caller.caller.routeCount;
  // Nowhere to reconnect to for now.
  target = "ws://127.0.0.1:1/api/v1/ws/device";
  await c.stop();
  const started = performance.now();
  expect(await reason(caller.call({ userId, name: "task_list", args: {} }))).toBe("device_offline");
  expect(performance.now() - started).toBeLessThan(100);
  expect(caller.caller.routeCount).toBe(remembered - 1);

  target = b.wsUrl;
  const outcome = await eventually(
    () => reason(caller.call({ userId, name: "task_list", args: {}, deadlineMs: 2000 })),
    (result) => result === "resolved",
    10_000,
    50,
  );
  expect(outcome).toBe("resolved");
});

test("a route expiring under load is looked up by one call, not by every call in flight", async () => {
  const userId = user();
  let answered = 0;
  await connectDevice(ctx, { url: a.wsUrl, userId, tools: { task_list: () => ++answered } });
  const ttlMs = 40;
  const busy = createRpcNode(await ctx.platform({ service: "agent" }), { routeTtlMs: ttlMs });
  await busy.start();
  ctx.defer(() => busy.stop());
  await busy.call({ userId, name: "task_list", args: {} });
  const lookups = spyOn(RedisPresence.prototype, "dispatch");
  try {
    const started = performance.now();
    let calls = 0;
    const worker = async () => {
      while (performance.now() - started < 600) {
        await busy.call({ userId, name: "task_list", args: {} });
        calls += 1;
      }
    };
    await Promise.all(Array.from({ length: 200 }, worker));
    const lifetimes = Math.ceil((performance.now() - started) / ttlMs);
    // One lookup per expiry at most (a lookup answered late can let the kept route lapse once more).
    expect(lookups.mock.calls.length).toBeLessThanOrEqual(2 * lifetimes);
    expect(calls).toBeGreaterThan(10 * lookups.mock.calls.length);
    expect(answered).toBe(calls + 1);
  } finally {
    lookups.mockRestore();
  }
});
