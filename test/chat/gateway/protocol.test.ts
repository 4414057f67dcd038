// The device WebSocket protocol on one real chat instance: authentication, validation of every
// frame, token renewal and expiry, the chat seam and its rate limit. Raw sockets where the test
// must misbehave; the SDK where it plays a well-behaved device.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ChatHandlers } from "../../../src/chat/gateway";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { type ChatInstance, connectDevice, rawSocket, startChat, startGatewayOnly } from "./helpers";

let ctx: TestContext;
let chat: ChatInstance;
let withEngine: ChatInstance;
let gatewayOnly: ChatInstance;
const cancelled: string[] = [];

const engine: ChatHandlers = {
  onChat(session, frame, send) {
    const chatId = frame.chat_id ?? "c-new";
    for (const [seq, delta] of ["Hello ", session.tier, "!"].entries())
      send({
        type: "chat_chunk",
        request_id: frame.request_id,
        chat_id: chatId,
        seq,
        chunk: { type: "text-delta", delta },
      });
    send({
      type: "chat_done",
      request_id: frame.request_id,
      chat_id: chatId,
      message_id: "m1",
      finish_reason: "stop",
      usage: { input_tokens: 1, output_tokens: 3, total_tokens: 4 },
    });
  },
  onChatCancel(_session, frame) {
    cancelled.push(frame.request_id);
  },
};

const env = { DEVICE_HELLO_TIMEOUT_MS: "300", DEVICE_MAX_FRAME_BYTES: "4096" };
beforeAll(async () => {
  ctx = await createTestContext();
  chat = await startChat(ctx, { env });
  withEngine = await startChat(ctx, { env }, { chat: engine });
  gatewayOnly = await startGatewayOnly(ctx, { env });
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const hello = (token: string | undefined, extra: Record<string, unknown> = {}) => ({
  type: "hello",
  token,
  device_id: "d1",
  tools: ["task_list"],
  protocol: 1,
  ...extra,
});

describe("authentication", () => {
  test("hello with a valid token gets welcome", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user())));
    expect(await socket.next("welcome")).toEqual({
      type: "welcome",
      connection_id: expect.any(String),
      heartbeat_s: 15,
      protocol: 1,
      active_turns: [],
    });
    socket.ws.close();
  });

  test("no hello in time: closed with 4401", async () => {
    const socket = await rawSocket(chat.wsUrl);
    expect(await socket.closed).toEqual({ code: 4401, reason: "no hello in time" });
  });

  test("an invalid, expired or missing token: closed with 4401", async () => {
    const expired = await ctx.token(user(), "free", { expiresInS: -60 });
    for (const token of ["not-a-jwt", expired, undefined]) {
      const socket = await rawSocket(chat.wsUrl);
      socket.send(hello(token));
      expect((await socket.closed).code).toBe(4401);
    }
  });

  test("a first frame that is not hello: closed with 4401", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send({ type: "ping" });
    expect(await socket.closed).toEqual({ code: 4401, reason: "expected a hello frame" });
  });

  test("an Authorization header authenticates; hello then needs no token", async () => {
    const socket = await rawSocket(chat.wsUrl, { headers: { authorization: `Bearer ${await ctx.token(user())}` } });
    socket.send(hello(undefined));
    expect((await socket.next("welcome")).type).toBe("welcome");
    socket.ws.close();
    const bad = await rawSocket(chat.wsUrl, { headers: { authorization: "Bearer nope" } });
    bad.send(hello(undefined));
    expect((await bad.closed).code).toBe(4401);
  });

  test("an unsupported protocol version: error frame, then 4426", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user()), { protocol: 99 }));
    expect(await socket.next("error")).toMatchObject({ code: "unsupported_protocol" });
    expect((await socket.closed).code).toBe(4426);
  });
});

describe("frame validation keeps the connection open", () => {
  test("malformed JSON, unknown types, invalid and oversized frames each get an error frame", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user())));
    await socket.next("welcome");
    const cases: Array<[string | Uint8Array, string]> = [
      ["{not json", "invalid_json"],
      ["[1,2]", "invalid_json"],
      [JSON.stringify({ type: "launch_missiles" }), "unknown_type"],
      [JSON.stringify({ type: "tool_result", id: "x", ok: true }), "invalid_frame"],
      [JSON.stringify({ type: "chat", request_id: "r1", surface: "sideways", text: "hi" }), "invalid_frame"],
      [JSON.stringify({ type: "ping", pad: "x".repeat(5000) }), "frame_too_large"],
      [new Uint8Array([1, 2, 3]), "binary_not_supported"],
      [JSON.stringify(hello("again")), "already_authenticated"],
    ];
    for (const [frame, code] of cases) {
      socket.ws.send(frame);
      expect(await socket.next("error")).toMatchObject({ type: "error", code });
    }
    const invalid = JSON.stringify({ type: "chat", request_id: "r9", surface: "home", text: "" });
    socket.ws.send(invalid);
    expect(await socket.next("error")).toMatchObject({ code: "invalid_frame", ref: "r9" });
    socket.send({ type: "ping" });
    expect(await socket.next("pong")).toEqual({ type: "pong" });
    socket.ws.close();
  });

  test("every error answering a frame that had a request_id or id names it in ref", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user())));
    await socket.next("welcome");
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ type: "launch_missiles", request_id: "r-unknown" }, "unknown_type", "r-unknown"],
      [{ type: "tool_result", id: "call-7", ok: true, pad: "x".repeat(5000) }, "frame_too_large", "call-7"],
      [{ type: "chat", request_id: "r-large", surface: "home", text: "x".repeat(5000) }, "frame_too_large", "r-large"],
      [{ type: "chat", request_id: "r-chat-id", chat_id: "not-a-uuid", text: "hi" }, "invalid_frame", "r-chat-id"],
      [{ type: "tool_progress", id: "call-8", progress: "half" }, "invalid_frame", "call-8"],
    ];
    for (const [frame, code, ref] of cases) {
      socket.send(frame);
      expect(await socket.next("error")).toMatchObject({ type: "error", code, ref });
    }
    socket.ws.close();
  });
});

describe("token lifetime", () => {
  test("an expiring token without renewal closes the socket with 4419", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user(), "free", { expiresInS: 1 })));
    await socket.next("welcome");
    expect(await socket.closed).toEqual({ code: 4419, reason: "token expired" });
  });

  test("a token frame renews the session on the open socket", async () => {
    const userId = user();
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(userId, "free", { expiresInS: 1 })));
    await socket.next("welcome");
    socket.send({ type: "token", token: await ctx.token(userId, "pro", { expiresInS: 600 }) });
    socket.send({ type: "token", token: "garbage" });
    expect(await socket.next("error")).toMatchObject({ code: "token_invalid" });
    // Past the first token's expiry the socket still answers.
    await Bun.sleep(1300);
    socket.send({ type: "ping" });
    expect(await socket.next("pong")).toEqual({ type: "pong" });
    expect(await chat.gateway.rpc.isOnline(userId)).toBe(true);
    socket.ws.close();
  });

  test("the SDK renews its token before expiry without dropping the socket", async () => {
    const userId = user();
    let issued = 0;
    const device = await connectDevice(ctx, {
      url: chat.wsUrl,
      userId,
      token: () => ctx.token(userId, "free", { expiresInS: issued++ === 0 ? 2 : 600 }),
      renewBeforeMs: 1000,
    });
    const closes: number[] = [];
    device.on("close", ({ code }) => closes.push(code));
    await eventually(
      () => issued,
      (count) => count >= 2,
    );
    await Bun.sleep(1500);
    expect({ closes, status: device.status }).toEqual({ closes: [], status: "open" });
  });

  test("a session refresh from the server makes the SDK fetch a new token and send it on the socket", async () => {
    const userId = user();
    const requests: boolean[] = [];
    const device = await connectDevice(ctx, {
      url: withEngine.wsUrl,
      userId,
      token: ({ stale }) => {
        requests.push(stale);
        return ctx.token(userId, stale ? "power" : "free");
      },
    });
    const tierSeen = async () => {
      const parts: unknown[] = [];
      for await (const chunk of device.chat({ text: "tier?" })) parts.push((chunk.chunk as { delta: string }).delta);
      return parts[1];
    };
    expect(await tierSeen()).toBe("free");
    const { platform } = withEngine;
    await platform.bus.publish(platform.keys.tierChanged(userId), JSON.stringify({ userId, tier: "power" }));
    expect(await eventually(tierSeen, (tier) => tier === "power")).toBe("power");
    expect(requests).toEqual([false, true]);
    expect(device.status).toBe("open");
  });

  test("a token for another user on the open socket closes it with 4401", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user())));
    await socket.next("welcome");
    socket.send({ type: "token", token: await ctx.token(user()) });
    expect(await socket.closed).toEqual({ code: 4401, reason: "token belongs to another user" });
  });
});

describe("chat frames", () => {
  test("without a chat engine, a chat frame gets chat_unavailable", async () => {
    const socket = await rawSocket(gatewayOnly.wsUrl);
    socket.send(hello(await ctx.token(user())));
    await socket.next("welcome");
    socket.send({ type: "chat", request_id: "r1", surface: "home", text: "hi" });
    expect(await socket.next("error")).toMatchObject({ code: "chat_unavailable", ref: "r1" });
    socket.ws.close();
  });

  test("without a journey relay, journey frames get journeys_unavailable", async () => {
    const socket = await rawSocket(gatewayOnly.wsUrl);
    socket.send(hello(await ctx.token(user())));
    await socket.next("welcome");
    socket.send({ type: "journey_start", request_id: "j1", agent_type: "filesystem" });
    expect(await socket.next("error")).toMatchObject({ code: "journeys_unavailable", ref: "j1" });
    socket.ws.close();
  });

  test("with a chat engine, the device streams its chunks and can cancel", async () => {
    const device = await connectDevice(ctx, { url: withEngine.wsUrl, userId: user() });
    const chatId = crypto.randomUUID();
    const stream = device.chat({ text: "hi", chatId });
    const deltas: unknown[] = [];
    for await (const chunk of stream) deltas.push((chunk.chunk as { delta: string }).delta);
    expect(deltas).toEqual(["Hello ", "pro", "!"]);
    expect(await stream.done).toMatchObject({ type: "chat_done", chat_id: chatId, message_id: "m1" });
    device.cancelChat("r-cancel");
    expect(
      await eventually(
        () => cancelled,
        (ids) => ids.includes("r-cancel"),
      ),
    ).toContain("r-cancel");
  });

  test("the tier's requests per minute apply to chat frames", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send(hello(await ctx.token(user(), "free")));
    await socket.next("welcome");
    for (let i = 0; i < 21; i++) socket.send({ type: "chat", request_id: `r${i}`, surface: "home", text: "hi" });
    // The chat service wires the shared per-tier limiter (free: 20/min): the 21st frame is refused
    // by it; the first 20 pass it (and run, or meet the per-connection cap on concurrent chats).
    const outcomes = await eventually(
      () => socket.frames.filter((frame) => frame.type === "error" || frame.type === "chat_done"),
      (frames) => frames.length === 21,
      20_000,
    );
    const limited = outcomes.filter((frame) => frame.code === "rate_limited");
    expect(limited).toEqual([
      {
        type: "error",
        code: "rate_limited",
        message: expect.any(String),
        ref: expect.any(String),
        retry_after_ms: expect.any(Number),
      },
    ]);
    const admitted = outcomes.filter((frame) => frame.code !== "rate_limited");
    expect(admitted.every((frame) => frame.type === "chat_done" || frame.code === "too_many_chats")).toBe(true);
    socket.ws.close();
  });

  test("a plugged-in limiter decides", async () => {
    const calls: string[] = [];
    const limited = await startChat(
      ctx,
      { env },
      {
        chat: engine,
        rateLimiter: {
          async allowChat(userId, tier) {
            calls.push(`${userId}:${tier}`);
            return { allowed: false, retryAfterMs: 1234 };
          },
        },
      },
    );
    const userId = user();
    const device = await connectDevice(ctx, { url: limited.wsUrl, userId });
    const stream = device.chat({ text: "hi", requestId: "r-limited" });
    expect(await stream.done.catch((error: unknown) => error)).toMatchObject({
      code: "rate_limited",
      retryAfterMs: 1234,
    });
    expect(calls).toEqual([`${userId}:pro`]);
  });
});
