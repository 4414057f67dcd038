// What one account or one address may hold on the device gateway: devices per user (across
// instances), the size of a `hello`, sockets not yet welcomed per client IP, and frame size. Real
// chat instances on the shared Redis; raw sockets play the attacker. The flood test measures Redis
// from a separate process (fixtures/redis-pinger.ts) so the figures are Redis's, not this event loop's.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { silentLogger } from "../../../src/shared/logger";
import { openRedis } from "../../../src/shared/redis";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { basicTools, type ChatInstance, connectDevice, rawSocket, startGatewayOnly } from "./helpers";

let ctx: TestContext;
let capA: ChatInstance;
let capB: ChatInstance;
let flood: ChatInstance;
let pending: ChatInstance;
let proxied: ChatInstance;
let framed: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  const roomy = { DEVICE_MAX_PENDING_PER_IP: "1000" };
  capA = await startGatewayOnly(ctx, { env: { ...roomy, DEVICE_MAX_PER_USER: "2" } });
  capB = await startGatewayOnly(ctx, { env: { ...roomy, DEVICE_MAX_PER_USER: "2" } });
  flood = await startGatewayOnly(ctx, { env: roomy });
  pending = await startGatewayOnly(ctx, { env: { DEVICE_MAX_PENDING_PER_IP: "3" } });
  proxied = await startGatewayOnly(ctx, { env: { DEVICE_MAX_PENDING_PER_IP: "2", TRUSTED_PROXY_HOPS: "1" } });
  framed = await startGatewayOnly(ctx, { env: { DEVICE_MAX_FRAME_BYTES: "4096" } });
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const hello = (token: string, deviceId: string, extra: Record<string, unknown> = {}) => ({
  type: "hello",
  token,
  device_id: deviceId,
  tools: ["task_list"],
  protocol: 1,
  ...extra,
});
const names = (count: number, length: number) =>
  Array.from({ length: count }, (_, i) => `t${i}_`.padEnd(length, "x").slice(0, length));
/** The report's hello: a 200-character name and 500 tool names of 100 characters. */
const attackerHello = (token: string, i: number) =>
  hello(token, `flood-${i}`, { device_name: "n".repeat(200), tools: names(500, 100) });
/** The largest hello the protocol accepts. */
const maximalHello = (token: string, i: number) =>
  hello(token, `max-${i}`, { device_name: "n".repeat(100), tools: names(64, 64) });

/** A raw socket that sends one hello; `result` is "welcome" or the close code. */
async function attempt(url: string, frame: unknown) {
  const frames: Array<Record<string, unknown>> = [];
  const ws = new WebSocket(url);
  const closed = new Promise<number>((resolve) => {
    ws.onclose = (event) => resolve(event.code);
  });
  const result = new Promise<"welcome" | number>((resolve) => {
    ws.onmessage = (event) => {
      const parsed = JSON.parse(String(event.data)) as Record<string, unknown>;
      frames.push(parsed);
      if (parsed.type === "welcome") resolve("welcome");
    };
    void closed.then(resolve);
  });
  ws.onopen = () => ws.send(JSON.stringify(frame));
  return { ws, frames, result, closed };
}

const tally = (results: Array<"welcome" | number>) => {
  const counts: Record<string, number> = {};
  for (const result of results) counts[result] = (counts[result] ?? 0) + 1;
  return counts;
};

describe("devices per user", () => {
  test("the cap holds across instances: the newest device is refused with 4429; a known device still reconnects", async () => {
    const token = await ctx.token(user(), "free");
    const laptop = await attempt(capA.wsUrl, hello(token, "laptop"));
    expect(await laptop.result).toBe("welcome");
    const desktop = await attempt(capB.wsUrl, hello(token, "desktop"));
    expect(await desktop.result).toBe("welcome");
    for (const instance of [capA, capB]) {
      const phone = await attempt(instance.wsUrl, hello(token, "phone"));
      expect(await phone.result).toBe(4429);
      expect(phone.frames).toEqual([
        { type: "error", code: "device_limit_reached", message: "this plan allows 2 devices connected at once" },
      ]);
    }
    // The laptop reconnects through the other instance: it replaces its old socket, never refused.
    const again = await attempt(capB.wsUrl, hello(token, "laptop"));
    expect(await again.result).toBe("welcome");
    expect(await laptop.closed).toBe(4409);
    // A device that leaves frees its place for the next one.
    desktop.ws.close();
    const phone = await eventually(
      async () => {
        const next = await attempt(capA.wsUrl, hello(token, "phone"));
        return { next, result: await next.result };
      },
      ({ result }) => result === "welcome",
    );
    expect(phone.result).toBe("welcome");
    for (const each of [again, phone.next]) each.ws.close();
  });

  test("a paid tier multiplies the cap by its deviceScale (pro: 2 x 2)", async () => {
    const token = await ctx.token(user(), "pro");
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await (await attempt(capA.wsUrl, hello(token, `d${i}`))).result);
    expect(results).toEqual(["welcome", "welcome", "welcome", "welcome", 4429]);
  });

  test("the SDK's connect() rejects with 4429 and does not retry", async () => {
    const userId = user();
    await connectDevice(ctx, { url: capA.wsUrl, userId, deviceId: "one", token: () => ctx.token(userId, "free") });
    await connectDevice(ctx, { url: capA.wsUrl, userId, deviceId: "two", token: () => ctx.token(userId, "free") });
    const third = connectDevice(ctx, { url: capA.wsUrl, userId, deviceId: "three", token: () => ctx.token(userId) });
    expect(await third.catch((error: unknown) => error)).toMatchObject({ code: 4429, reason: "too many devices" });
  });
});

describe("hello bounds", () => {
  test("the largest hello the protocol allows is welcomed", async () => {
    const socket = await attempt(capA.wsUrl, maximalHello(await ctx.token(user()), 0));
    expect(await socket.result).toBe("welcome");
    socket.ws.close();
  });

  test.each([
    ["65 tools", { tools: names(65, 10) }, "tools: Too big: expected array to have <=64 items"],
    ["a 65-character tool name", { tools: names(1, 65) }, "tools.0: Too big: expected string to have <=64 characters"],
    ["a tool name with a space", { tools: ["task list"] }, "tools.0: tool names are letters, digits and _ . : -"],
    [
      "a 101-character device name",
      { device_name: "n".repeat(101) },
      "device_name: Too big: expected string to have <=100 characters",
    ],
  ])("%s: an invalid_hello error, then close 4400, nothing stored", async (_name, extra, message) => {
    const userId = user();
    const socket = await attempt(capA.wsUrl, hello(await ctx.token(userId), "d1", extra));
    expect(await socket.result).toBe(4400);
    expect(socket.frames).toEqual([{ type: "error", code: "invalid_hello", message }]);
    expect(await capA.gateway.rpc.isOnline(userId)).toBe(false);
  });

  test("a hello the input policy refuses (a NUL in a field name) is refused the same way", async () => {
    const userId = user();
    const socket = await attempt(capA.wsUrl, hello(await ctx.token(userId), "d1", { "device\u0000name": "x" }));
    expect(await socket.result).toBe(4400);
    expect(socket.frames.map((frame) => (frame as { code?: string }).code)).toEqual(["invalid_hello"]);
    expect(await capA.gateway.rpc.isOnline(userId)).toBe(false);
  });
});

describe("sockets waiting for hello, per client IP", () => {
  test("past the cap an upgrade gets 429; a welcome or a close frees a place", async () => {
    const waiting = await Promise.all([1, 2, 3].map(() => rawSocket(pending.wsUrl)));
    await expect(rawSocket(pending.wsUrl)).rejects.toThrow("socket failed to open");
    const refused = await fetch(pending.wsUrl.replace(/^ws/, "http"), {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("too_many_pending");
    waiting[0]!.send(hello(await ctx.token(user()), "d1"));
    await waiting[0]!.next("welcome");
    const fourth = await rawSocket(pending.wsUrl);
    await expect(rawSocket(pending.wsUrl)).rejects.toThrow("socket failed to open");
    waiting[1]!.ws.close();
    await waiting[1]!.closed;
    const fifth = await eventually(
      () => rawSocket(pending.wsUrl).catch(() => undefined),
      (socket) => socket !== undefined,
    );
    for (const socket of [...waiting, fourth, fifth!]) socket.ws.close();
  });

  test("behind a proxy the address is X-Forwarded-For's as TRUSTED_PROXY_HOPS says, not a client-chosen entry", async () => {
    const from = (chain: string) => rawSocket(proxied.wsUrl, { headers: { "x-forwarded-for": chain } });
    const first = await from("203.0.113.7");
    const second = await from("198.51.100.1, 203.0.113.7");
    await expect(from("192.0.2.9, 203.0.113.7")).rejects.toThrow("socket failed to open");
    const other = await from("203.0.113.8");
    for (const socket of [first, second, other]) socket.ws.close();
  });
});

describe("frame size", () => {
  test("just over DEVICE_MAX_FRAME_BYTES: an error frame; far over it: Bun closes with 1009 before buffering", async () => {
    const socket = await rawSocket(framed.wsUrl);
    socket.send(hello(await ctx.token(user()), "d1"));
    await socket.next("welcome");
    socket.send({ type: "ping", pad: "x".repeat(5000) });
    expect(await socket.next("error")).toMatchObject({ code: "frame_too_large" });
    socket.send({ type: "ping" });
    expect(await socket.next("pong")).toEqual({ type: "pong" });
    socket.send({ type: "ping", pad: "x".repeat(4096 + 64 * 1024) });
    expect((await socket.closed).code).toBe(1009);
    const early = await rawSocket(framed.wsUrl);
    early.ws.send("x".repeat(256 * 1024));
    expect((await early.closed).code).toBe(1009);
  });
});

describe("a flood from one account", () => {
  test("hundreds of sockets with maximal hellos are refused early, and Redis stays fast for another user", async () => {
    const { keys } = flood.platform;
    const attacker = user();
    const token = await ctx.token(attacker, "free");
    const bystander = user();
    const device = await connectDevice(ctx, { url: flood.wsUrl, userId: bystander, tools: basicTools });
    const pinger = Bun.spawn(
      ["bun", `${import.meta.dir}/fixtures/redis-pinger.ts`, ctx.redisUrl, keys.presence(bystander)],
      { stdin: "pipe", stdout: "pipe" },
    );
    ctx.defer(() => pinger.kill());
    const output = pinger.stdout.getReader();
    const decoder = new TextDecoder();
    let printed = "";
    while (!printed.includes("ready")) printed += decoder.decode((await output.read()).value);
    const rssBefore = process.memoryUsage().rss;
    const floodStartedS = Math.floor(Date.now() / 1000);

    // The reported hello: refused for its size, before anything reaches Redis.
    const oversized = await Promise.all(
      Array.from({ length: 300 }, (_, i) => attempt(flood.wsUrl, attackerHello(token, i))),
    );
    expect(tally(await Promise.all(oversized.map((socket) => socket.result)))).toEqual({ 4400: 300 });

    // The largest hello allowed, each a new device: the free tier's 5 get in, the rest meet the cap.
    const maximal = await Promise.all(
      Array.from({ length: 300 }, (_, i) => attempt(flood.wsUrl, maximalHello(token, i))),
    );
    const bystanderCall = (async () => {
      const started = performance.now();
      const result = await flood.gateway.rpc.call({ userId: bystander, name: "task_list", args: {} });
      return { result, ms: performance.now() - started };
    })();
    expect(tally(await Promise.all(maximal.map((socket) => socket.result)))).toEqual({ welcome: 5, 4429: 295 });
    const call = await bystanderCall;
    expect(call.result).toMatchObject({ tasks: [{ id: "t1" }] });

    pinger.stdin.end();
    while (!printed.includes("}")) printed += decoder.decode((await output.read()).value);
    const latency = JSON.parse(printed.slice(printed.indexOf("{"))) as Record<
      "count" | "p50" | "p90" | "p99" | "max",
      number
    >;
    const redis = openRedis({
      topology: { kind: "single", url: ctx.redisUrl },
      logger: silentLogger(),
      name: "flood-test",
    });
    const usage = async (key: string) => ((await redis.call("MEMORY", "USAGE", key)) as number | null) ?? 0;
    const stored = (await usage(keys.presence(attacker))) + (await usage(keys.presenceSlots(attacker)));
    // Redis's own record of commands that ran 10 ms or longer (its default slowlog threshold).
    const slowlog = (await redis.call("SLOWLOG", "GET", "128")) as Array<[number, number, number, string[]]>;
    const slow = slowlog.filter(
      ([, at, , args]) => at >= floodStartedS && args.some((arg) => String(arg).includes(ctx.keyPrefix)),
    );
    redis.disconnect();
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    console.log(JSON.stringify({ latencyMs: latency, presenceBytes: stored, rssGrowthMb, bystanderCallMs: call.ms }));

    // The tail of a round trip measured from another process also holds CPU scheduling on a busy
    // machine; what Redis itself spent on this test's commands is the slowlog's business.
    expect(latency.count).toBeGreaterThan(10);
    expect(latency.p50).toBeLessThan(2);
    // Before the caps, one round trip waited seconds behind the presence scripts.
    expect(latency.max).toBeLessThan(500);
    expect(slow.map(([, , micros, args]) => ({ micros, command: args.slice(0, 3) }))).toEqual([]);
    // Five leases of at most ~5 KB each, not megabytes.
    expect(stored).toBeLessThan(64 * 1024);
    expect(rssGrowthMb).toBeLessThan(200);
    for (const socket of [...oversized, ...maximal]) socket.ws.close();
    device.close();
  }, 60_000);
});
