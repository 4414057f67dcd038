// The device SDK against real chat instances: connection errors, heartbeats, and reconnection
// with backoff when its server goes away. One test records the SDK's frames by passing it a
// WebSocket subclass (the SDK's own option for that).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeviceClient, DeviceConnectError } from "../../src/client";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { type ChatInstance, connectDevice, rawSocket, startChat } from "../chat/gateway/helpers";

let ctx: TestContext;
let fast: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  // A 0.2 s heartbeat: silent sockets are dropped after 0.6 s.
  fast = await startChat(ctx, { env: { DEVICE_HEARTBEAT_S: "0.2" } });
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

describe("device client", () => {
  test("connect rejects with the server's close code when the token is refused", async () => {
    const client = new DeviceClient({ url: fast.wsUrl, token: () => "not-a-token", deviceId: "d1" });
    const error = await client.connect().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DeviceConnectError);
    expect(error).toMatchObject({ code: 4401, reason: "invalid or expired token" });
    expect(client.status).toBe("closed");
  });

  test("its heartbeat keeps the socket open where a silent socket is dropped with 4408", async () => {
    const userId = user();
    const device = await connectDevice(ctx, { url: fast.wsUrl, userId });
    const silent = await rawSocket(fast.wsUrl);
    silent.send({ type: "hello", token: await ctx.token(user()), device_id: "quiet", tools: [], protocol: 1 });
    await silent.next("welcome");
    expect(await silent.closed).toEqual({ code: 4408, reason: "no heartbeat" });
    expect(device.status).toBe("open");
    expect(await fast.gateway.rpc.isOnline(userId)).toBe(true);
  });

  test("refused at the user's device cap when it reconnects, it stops instead of retrying in a loop", async () => {
    const userId = user();
    const capped = { env: { DEVICE_MAX_PER_USER: "1" } };
    const first = await startChat(ctx, capped);
    const second = await startChat(ctx, capped);
    let target = first.wsUrl;
    const token = () => ctx.token(userId, "free");
    const device = await connectDevice(ctx, { url: () => target, userId, token, deviceId: "laptop" });
    const closes: Array<{ code: number; willReconnect: boolean }> = [];
    device.on("close", ({ code, willReconnect }) => closes.push({ code, willReconnect }));
    await first.stop();
    // While the laptop is away, another device of the user takes the one place.
    await connectDevice(ctx, { url: second.wsUrl, userId, token, deviceId: "phone" });
    target = second.wsUrl;
    const last = await eventually(
      () => closes.at(-1),
      (close) => close?.code === 4429,
    );
    expect(last).toEqual({ code: 4429, willReconnect: false });
    expect(device.status).toBe("closed");
    const attempts = closes.length;
    await Bun.sleep(600);
    expect(closes.length).toBe(attempts);
  });

  test("a hello out of bounds is refused with 4400, not retried", async () => {
    const tools = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`tool_${i}`, () => null]));
    const client = new DeviceClient({ url: fast.wsUrl, token: () => ctx.token(user()), deviceId: "d1", tools });
    const error = await client.connect().catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 4400, reason: "invalid hello" });
    expect(client.status).toBe("closed");
  });

  test("a connect attempt nobody answers fails after connectTimeoutMs instead of hanging", async () => {
    // Accepts TCP and never answers the upgrade.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const url = `ws://127.0.0.1:${silent.port}/api/v1/ws/device`;
    const client = new DeviceClient({ url, token: () => ctx.token(user()), deviceId: "d1", connectTimeoutMs: 300 });
    const started = performance.now();
    const error = await client.connect().catch((caught: unknown) => caught);
    const elapsed = performance.now() - started;
    silent.stop(true);
    expect(error).toMatchObject({ code: 1006, reason: "connect timeout" });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
    expect(client.status).toBe("closed");
  });

  test("it reconnects with backoff when its server goes away, with a new connection id", async () => {
    const userId = user();
    const first = await startChat(ctx);
    let target = first.wsUrl;
    const device = await connectDevice(ctx, { url: () => target, userId, tools: { task_list: () => "here" } });
    const firstId = device.connectionId;
    const closes: Array<{ code: number; willReconnect: boolean }> = [];
    device.on("close", ({ code, willReconnect }) => closes.push({ code, willReconnect }));
    await first.stop();
    const second = await startChat(ctx);
    target = second.wsUrl;
    await eventually(
      () => device.status,
      (status) => status === "open",
    );
    expect(device.connectionId).not.toBe(firstId);
    expect(closes[0]).toEqual({ code: 1001, willReconnect: true });
    expect(await second.gateway.rpc.call({ userId, name: "task_list", args: {} })).toBe("here");
  });

  test("a handler that reads its signal only after the cancel sees it aborted, and its answer is dropped", async () => {
    const userId = user();
    const received: Array<{ type: string; id?: string }> = [];
    const sent: Array<{ type: string; id?: string }> = [];
    class RecordingSocket extends WebSocket {
      constructor(url: string | URL) {
        super(url);
        this.addEventListener("message", (event) => received.push(JSON.parse(String(event.data))));
      }
      override send(data: string): void {
        sent.push(JSON.parse(data));
        super.send(data);
      }
    }
    const { promise: release, resolve: releaseHandler } = Promise.withResolvers<void>();
    const { promise: started, resolve: onStart } = Promise.withResolvers<string>();
    const { promise: seen, resolve: onSeen } = Promise.withResolvers<{ aborted: boolean; reason: string }>();
    await connectDevice(ctx, {
      url: fast.wsUrl,
      userId,
      WebSocket: RecordingSocket as typeof WebSocket,
      tools: {
        fs_list_dir: async (_args, call) => {
          onStart(call.id);
          await release;
          onSeen({ aborted: call.signal.aborted, reason: (call.signal.reason as Error).message });
          return { entries: [] };
        },
      },
    });
    const controller = new AbortController();
    const call = fast.gateway.rpc.call({ userId, name: "fs_list_dir", args: { path: "/" }, signal: controller.signal });
    const id = await started;
    controller.abort();
    expect(await call.catch((error: { reason?: string }) => error.reason)).toBe("cancelled");
    await eventually(
      () => received.some((frame) => frame.type === "tool_cancel" && frame.id === id),
      (arrived) => arrived,
    );
    releaseHandler();
    expect(await seen).toEqual({ aborted: true, reason: "cancelled" });
    await Bun.sleep(1);
    expect(sent.filter((frame) => frame.type === "tool_result")).toEqual([]);
  });
});
