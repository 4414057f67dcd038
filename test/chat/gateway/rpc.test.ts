// Device RPC across two real chat instances (A and B) sharing one Redis and one key prefix; the
// devices are real WebSocket clients built with the SDK in src/client. Also: one socket per device,
// a device that connects again while its old socket is open replaces it, here or elsewhere.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { DeviceClient } from "../../../src/client";
import { DeviceCallError } from "../../../src/shared/device-rpc";
import { createDeviceRpcClient } from "../../../src/shared/device-rpc/client";
import { laneFor } from "../../../src/shared/device-rpc/lane";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { basicTools, type ChatInstance, connectDevice, startChat } from "./helpers";

let ctx: TestContext;
let a: ChatInstance;
let b: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  a = await startChat(ctx);
  b = await startChat(ctx);
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

async function failure(promise: Promise<unknown>): Promise<DeviceCallError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof DeviceCallError)) throw new Error(`expected a DeviceCallError, got ${String(error)}`);
  return error;
}

const metric = async (instance: ChatInstance, name: string, labels: string) => {
  const text = await instance.platform.metrics.registry.metrics();
  const line = text.split("\n").find((row) => row.startsWith(`${name}{`) && row.includes(labels));
  return Number(line?.split(" ").at(-1) ?? 0);
};

describe("device rpc across instances", () => {
  test("a device on A answers a call made on B, and one made on A", async () => {
    const userId = user();
    await connectDevice(ctx, { url: a.wsUrl, userId, tools: basicTools });
    const fromB = await b.gateway.rpc.call({ userId, name: "task_list", args: { status: "open" }, origin: "chat" });
    const fromA = await a.gateway.rpc.call({ userId, name: "task_list", args: {} });
    expect(fromB).toEqual({ tasks: [{ id: "t1", title: "Buy milk", status: "open" }], args: { status: "open" } });
    expect(fromA).toEqual({ tasks: [{ id: "t1", title: "Buy milk", status: "open" }], args: {} });
    expect(await metric(b, "device_rpc_calls_total", 'outcome="ok",path="remote"')).toBeGreaterThanOrEqual(1);
    expect(await metric(a, "device_rpc_calls_total", 'outcome="ok",path="local"')).toBeGreaterThanOrEqual(1);
  });

  test("2000 calls in flight each get their own answer; a turn's messages to one inbox travel together", async () => {
    const userId = user();
    await connectDevice(ctx, { url: a.wsUrl, userId, tools: basicTools });
    await b.gateway.rpc.call({ userId, name: "task_list", args: {} });
    const { keys } = a.platform;
    const counted = { toA: 0, toB: 0 };
    const listeners = await Promise.all([
      laneFor(b.platform).subscribe(keys.instanceBatchInbox(a.platform.instanceId), () => counted.toA++),
      laneFor(b.platform).subscribe(keys.instanceInbox(a.platform.instanceId), () => counted.toA++),
      laneFor(a.platform).subscribe(keys.instanceBatchInbox(b.platform.instanceId), () => counted.toB++),
      laneFor(a.platform).subscribe(keys.instanceInbox(b.platform.instanceId), () => counted.toB++),
    ]);
    try {
      const calls = Array.from({ length: 2000 }, (_, n) => ({ n, call: `c${n}` }));
      const results = await Promise.all(
        calls.map((args) => b.gateway.rpc.call({ userId, name: "task_list", args, deadlineMs: 30_000 })),
      );
      expect(results.map((result) => (result as { args: unknown }).args)).toEqual(calls);
      // Far fewer Redis messages than calls each way: calls and results went in batches.
      expect(counted.toA).toBeGreaterThan(0);
      expect(counted.toA).toBeLessThan(1000);
      expect(counted.toB).toBeGreaterThan(0);
      expect(counted.toB).toBeLessThan(1000);
    } finally {
      for (const unsubscribe of listeners) await unsubscribe();
    }
  }, 30_000);

  test("a batch on an inbox with junk in it: what is ours is handled, the rest dropped, the instance unharmed", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: basicTools });
    const [lease] = await a.gateway.rpc.devices(userId);
    const { keys, instanceId } = a.platform;
    const evict = { t: "evict", id: lease!.connectionId, user: userId, ts: Date.now() };
    const closed = closeOf(device);
    const batchInbox = keys.instanceBatchInbox(instanceId);
    for (const junk of ["[", "[]", "[[[[[[[[]]]]]]]]", "{}", "null", '"text"', '[1,null,{},{"t":7},{"t":"call"}]'])
      await laneFor(b.platform).publish(batchInbox, junk);
    await laneFor(b.platform).publish(batchInbox, JSON.stringify([null, 42, { t: "result" }, evict, "x"]));
    expect((await closed).code).toBe(4409);
    const again = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: basicTools });
    expect(again.status).toBe("open");
    expect(await b.gateway.rpc.call({ userId, name: "task_list", args: { after: "junk" } })).toMatchObject({
      args: { after: "junk" },
    });
  });

  test("a device's error reaches the caller with its code", async () => {
    const userId = user();
    await connectDevice(ctx, { url: a.wsUrl, userId, tools: basicTools });
    const error = await failure(b.gateway.rpc.call({ userId, name: "task_create", args: { title: "x" } }));
    expect({ reason: error.reason, toolCode: error.toolCode, message: error.message }).toEqual({
      reason: "tool_error",
      toolCode: "storage_full",
      message: "disk full",
    });
  });

  test("a tool the device does not offer fails with tool_not_supported", async () => {
    const userId = user();
    await connectDevice(ctx, { url: a.wsUrl, userId, tools: basicTools });
    const error = await failure(b.gateway.rpc.call({ userId, name: "fs_read_file", args: { path: "/etc" } }));
    expect(error.reason).toBe("tool_not_supported");
  });

  test("no device: device_offline at once, and isOnline is false", async () => {
    const userId = user();
    const started = performance.now();
    const error = await failure(b.gateway.rpc.call({ userId, name: "task_list", args: {} }));
    const elapsed = performance.now() - started;
    expect(error.reason).toBe("device_offline");
    expect(elapsed).toBeLessThan(100);
    expect(await b.gateway.rpc.isOnline(userId)).toBe(false);
  });

  test("several devices per user: a device id targets one, no id targets the most recent", async () => {
    const userId = user();
    const seen: string[] = [];
    const tool = (name: string) => ({ task_list: () => seen.push(name) && name });
    await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: tool("laptop") });
    await connectDevice(ctx, { url: b.wsUrl, userId, deviceId: "desktop", tools: tool("desktop") });
    expect(await a.gateway.rpc.call({ userId, deviceId: "laptop", name: "task_list", args: {} })).toBe("laptop");
    expect(await a.gateway.rpc.call({ userId, name: "task_list", args: {} })).toBe("desktop");
    const devices = await b.gateway.rpc.devices(userId);
    expect(devices.map((device) => [device.deviceId, device.instanceId])).toEqual([
      ["desktop", b.platform.instanceId],
      ["laptop", a.platform.instanceId],
    ]);
    expect(await b.gateway.rpc.isOnline(userId, "laptop")).toBe(true);
    expect(await b.gateway.rpc.isOnline(userId, "phone")).toBe(false);
  });

  test("cancellation reaches the device as tool_cancel", async () => {
    const userId = user();
    const { promise: started, resolve: onStart } = Promise.withResolvers<void>();
    const { promise: aborted, resolve: onAbort } = Promise.withResolvers<string>();
    await connectDevice(ctx, {
      url: a.wsUrl,
      userId,
      tools: {
        fs_list_dir: (_args, call) =>
          new Promise(() => {
            call.signal.addEventListener("abort", () => onAbort(String((call.signal.reason as Error).message)));
            onStart();
          }),
      },
    });
    const controller = new AbortController();
    const call = b.gateway.rpc.call({ userId, name: "fs_list_dir", args: { path: "/" }, signal: controller.signal });
    await started;
    controller.abort();
    expect((await failure(call)).reason).toBe("cancelled");
    expect(await aborted).toBe("cancelled");
  });

  test("progress reaches the caller and extends the deadline", async () => {
    const userId = user();
    await connectDevice(ctx, {
      url: a.wsUrl,
      userId,
      tools: {
        fs_list_dir: async (_args, call) => {
          // Four steps of 150 ms each outlast the 300 ms deadline; each report extends it.
          for (let step = 1; step <= 4; step++) {
            await Bun.sleep(150);
            call.progress(step, 4, `step ${step}`);
          }
          return { entries: [] };
        },
      },
    });
    const reports: unknown[] = [];
    const result = await b.gateway.rpc.call({
      userId,
      name: "fs_list_dir",
      args: { path: "/" },
      deadlineMs: 300,
      onProgress: (progress) => reports.push(progress),
    });
    expect(result).toEqual({ entries: [] });
    expect(reports).toEqual([1, 2, 3, 4].map((step) => ({ progress: step, total: 4, message: `step ${step}` })));
  });

  test("a deadline fires exactly once; the late answer is ignored and counted", async () => {
    const userId = user();
    const { promise: cancelled, resolve: onCancel } = Promise.withResolvers<string>();
    const device = await connectDevice(ctx, {
      url: a.wsUrl,
      userId,
      tools: {
        task_list: (_args, call) =>
          new Promise(() => {
            call.signal.addEventListener("abort", () => onCancel(call.id));
          }),
      },
    });
    const lateBefore = await metric(a, "device_rpc_late_results_total", 'where="gateway"');
    const timeoutsBefore = await metric(b, "device_rpc_calls_total", 'outcome="deadline_exceeded"');
    const error = await failure(b.gateway.rpc.call({ userId, name: "task_list", args: {}, deadlineMs: 150 }));
    expect(error.reason).toBe("deadline_exceeded");
    const id = await cancelled;
    // The SDK drops answers to cancelled calls; a device that answers anyway (twice) is ignored.
    device.send({ type: "tool_result", id, ok: true, result: "late" });
    device.send({ type: "tool_result", id, ok: true, result: "duplicate" });
    expect(
      await eventually(
        () => metric(a, "device_rpc_late_results_total", 'where="gateway"'),
        (value) => value >= lateBefore + 2,
      ),
    ).toBe(lateBefore + 2);
    expect(await metric(b, "device_rpc_calls_total", 'outcome="deadline_exceeded"')).toBe(timeoutsBefore + 1);
  });

  test("another user's device cannot answer a call", async () => {
    const victim = user();
    const { promise: callId, resolve: gotId } = Promise.withResolvers<string>();
    let release: ((value: unknown) => void) | undefined;
    await connectDevice(ctx, {
      url: a.wsUrl,
      userId: victim,
      tools: {
        note_search: (_args, call) =>
          new Promise((resolve) => {
            gotId(call.id);
            release = resolve;
          }),
      },
    });
    const attacker = await connectDevice(ctx, { url: a.wsUrl, userId: user(), tools: {} });
    const call = b.gateway.rpc.call({ userId: victim, name: "note_search", args: { query: "secrets" } });
    const id = await callId;
    const lateBefore = await metric(a, "device_rpc_late_results_total", 'where="gateway"');
    attacker.send({ type: "tool_result", id, ok: true, result: "forged" });
    await eventually(
      () => metric(a, "device_rpc_late_results_total", 'where="gateway"'),
      (value) => value > lateBefore,
    );
    release?.({ notes: [] });
    expect(await call).toEqual({ notes: [] });
  });

  test("a service without sockets calls and pushes through Redis", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: a.wsUrl, userId, tools: basicTools });
    const agent = createDeviceRpcClient(await ctx.platform({ service: "agent" }));
    await agent.start();
    ctx.defer(() => agent.stop());
    expect(await agent.isOnline(userId)).toBe(true);
    expect(await agent.call({ userId, name: "task_list", args: {}, origin: "agent:run-1" })).toMatchObject({
      tasks: [{ id: "t1" }],
    });
    const events: unknown[] = [];
    device.on("agent_event", (event) => events.push(event));
    for (let seq = 0; seq < 50; seq++) await agent.push(userId, { type: "agent_event", run_id: "run-1", seq });
    await eventually(
      () => events.length,
      (count) => count === 50,
    );
    expect(events).toEqual(Array.from({ length: 50 }, (_, seq) => ({ type: "agent_event", run_id: "run-1", seq })));
  });

  test("chat chunks pushed on B reach a device on A in order", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: a.wsUrl, userId, tools: {} });
    const seqs: number[] = [];
    device.on("chat_chunk", (chunk) => seqs.push(chunk.seq));
    let receivers = 0;
    for (let seq = 0; seq < 200; seq++) {
      const chunk = { type: "text-delta", id: "m1", delta: `w${seq} ` };
      receivers += await b.gateway.push.push(userId, {
        type: "chat_chunk",
        request_id: "r1",
        chat_id: "c1",
        seq,
        chunk,
      });
    }
    await eventually(
      () => seqs.length,
      (count) => count === 200,
    );
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, seq) => seq));
    expect(receivers).toBe(200);
    expect(await b.gateway.push.push(user(), { type: "session", action: "refresh" })).toBe(0);
  });

  test("a tier change tells the user's devices to refresh their session", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: b.wsUrl, userId, tools: {} });
    const { promise: refreshed, resolve } = Promise.withResolvers<unknown>();
    device.on("session", resolve);
    await a.platform.bus.publish(a.platform.keys.tierChanged(userId), JSON.stringify({ userId, tier: "power" }));
    expect(await refreshed).toEqual({ type: "session", action: "refresh" });
  });
});

const answer = (who: string) => ({ task_list: () => who });
type Close = { code: number; reason: string; willReconnect: boolean };
const closeOf = (device: DeviceClient) => new Promise<Close>((resolve) => device.on("close", resolve));

describe("one socket per device", () => {
  for (const [where, second] of [
    ["on the same instance", () => a],
    ["on another instance", () => b],
  ] as const) {
    test(`a second connection with the same device id ${where} closes the first with 4409`, async () => {
      const userId = user();
      const old = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: answer("old") });
      const closed = closeOf(old);
      await connectDevice(ctx, { url: second().wsUrl, userId, deviceId: "laptop", tools: answer("new") });
      expect(await closed).toEqual({ code: 4409, reason: "replaced by a newer connection", willReconnect: false });
      expect(old.status).toBe("closed");
      const devices = await eventually(
        () => a.gateway.rpc.devices(userId),
        (list) => list.length === 1,
      );
      expect(devices.map((device) => device.instanceId)).toEqual([second().platform.instanceId]);
      expect(await a.gateway.rpc.call({ userId, deviceId: "laptop", name: "task_list", args: {} })).toBe("new");
    });
  }

  test("the user's other devices and other users' devices with the same id stay connected", async () => {
    const userId = user();
    const laptop = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop", tools: answer("laptop") });
    const stranger = await connectDevice(ctx, { url: a.wsUrl, userId: user(), deviceId: "desktop" });
    await connectDevice(ctx, { url: b.wsUrl, userId, deviceId: "desktop", tools: answer("desktop") });
    await Bun.sleep(100);
    expect([laptop.status, stranger.status]).toEqual(["open", "open"]);
    expect((await b.gateway.rpc.devices(userId)).map((device) => device.deviceId).sort()).toEqual([
      "desktop",
      "laptop",
    ]);
  });

  test("an eviction naming the connection with another user id closes nothing", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: a.wsUrl, userId, deviceId: "laptop" });
    const [lease] = await a.gateway.rpc.devices(userId);
    const { keys, instanceId } = a.platform;
    const evict = (user: string) =>
      laneFor(b.platform).publish(
        keys.instanceInbox(instanceId),
        JSON.stringify({ t: "evict", id: lease!.connectionId, user, ts: Date.now() }),
      );
    const closed = closeOf(device);
    await evict(`user-${crypto.randomUUID()}`);
    await Bun.sleep(100);
    expect(device.status).toBe("open");
    // The same message with the right user does close it: the check above is the user id.
    await evict(userId);
    expect((await closed).code).toBe(4409);
  });
});
