// The WebSocket side of chat: `chat` / `chat_cancel` frames through the adapter the device gateway
// calls (src/chat/ws.ts), with an in-test session standing in for the socket. The real provider
// talks to the fake OpenAI-compatible server; PostgreSQL and Redis are real.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ChatServerFrame, ChatSession } from "../../src/chat/ws";
import type { Tier } from "../../src/shared/tiers";
import { type ChatHarness, promptOf, startChat, turns, upstreamFor } from "./harness";

let h: ChatHarness;
beforeAll(async () => {
  h = await startChat();
});
afterAll(() => h.ctx.close());

function session(userId = `user-${crypto.randomUUID()}`, tier: Tier = "free") {
  const frames: ChatServerFrame[] = [];
  const waiters: Array<() => void> = [];
  const s: ChatSession & { frames: ChatServerFrame[]; firstText(): Promise<ChatServerFrame> } = {
    userId,
    tier,
    deviceId: "device-1",
    frames,
    send(frame) {
      frames.push(frame);
      for (const wake of waiters.splice(0)) wake();
    },
    /** Resolves at the first text chunk: the model request is then in flight. */
    async firstText() {
      for (;;) {
        const found = frames.find((frame) => frame.type === "chat_chunk" && frame.chunk.type === "text-delta");
        if (found) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
  return s;
}

describe("chat frames", () => {
  test("a chat streams chat_chunk frames with consecutive seq numbers, then chat_done with usage", async () => {
    const s = session();
    h.llm.script({ chunks: ["One", " two", " three"], usage: { prompt: 9, completion: 3 } });
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "r1", surface: "home", text: "count" });
    const chunks = s.frames.filter((frame) => frame.type === "chat_chunk");
    expect(chunks.map((frame) => frame.seq)).toEqual(chunks.map((_, index) => index));
    expect(chunks.flatMap((frame) => (frame.chunk.type === "text-delta" ? [frame.chunk.delta] : []))).toEqual([
      "One",
      " two",
      " three",
    ]);
    const done = s.frames.at(-1);
    expect(done).toMatchObject({
      type: "chat_done",
      request_id: "r1",
      chat_id: chunks[0]?.chat_id,
      finish_reason: "stop",
      usage: { input_tokens: 9, output_tokens: 3, total_tokens: 12 },
    });
    expect(chunks.every((frame) => frame.request_id === "r1" && frame.chat_id === chunks[0]?.chat_id)).toBe(true);
  });

  test("the device that sent the chat is the one whose tools run", async () => {
    const s = session();
    h.devices.connect(s.userId, ["task_list"], "device-1").connect(s.userId, ["task_list"], "device-2");
    h.devices.onTool("task_list", () => []);
    h.llm.script({ toolCalls: [{ name: "task_list", args: {} }] }, { text: "Nothing to do." });
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "r-dev", text: "tasks?" });
    expect(h.devices.calls.at(-1)?.deviceId).toBe("device-1");
  });

  test("chat_cancel stops the upstream model request and ends with chat_done cancelled", async () => {
    const s = session();
    h.llm.script({ text: "this goes on and on", hang: true });
    const running = h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "r2", text: "talk r2" });
    await s.firstText();
    const upstream = await upstreamFor(h, "talk r2");
    await h.parts.frames.handleChatFrame(s, { type: "chat_cancel", request_id: "r2" });
    await running;
    await upstream.abortedSignal;
    expect(upstream.aborted).toBe(true);
    expect(s.frames.at(-1)).toMatchObject({ type: "chat_done", request_id: "r2", finish_reason: "cancelled" });
  });

  test("a closed socket cancels its running chats", async () => {
    const s = session();
    h.llm.script({ text: "never ending", hang: true });
    const running = h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "r3", text: "talk r3" });
    await s.firstText();
    const upstream = await upstreamFor(h, "talk r3");
    h.parts.frames.closeSession(s);
    await running;
    await upstream.abortedSignal;
    expect(upstream.aborted).toBe(true);
  });

  test("malformed frames get an error frame with the request id as ref; the model is not called", async () => {
    const s = session();
    const before = turns(h);
    const bad: unknown[] = [
      { type: "chat", request_id: "m1" },
      { type: "chat", request_id: "m2", text: "hi", surface: "popup" },
      { type: "chat", request_id: "m3", text: "hi", chat_id: "nope" },
      { type: "chat", text: "no request id" },
      { type: "chat_cancel" },
      null,
      "text",
    ];
    for (const frame of bad) await h.parts.frames.handleChatFrame(s, frame);
    expect(
      s.frames.map((frame) => [frame.type, "code" in frame ? frame.code : "", "ref" in frame ? frame.ref : undefined]),
    ).toEqual([
      ["error", "invalid_frame", "m1"],
      ["error", "invalid_frame", "m2"],
      ["error", "invalid_frame", "m3"],
      ["error", "invalid_frame", undefined],
      ["error", "invalid_frame", undefined],
      ["error", "invalid_frame", undefined],
      ["error", "invalid_frame", undefined],
    ]);
    expect(turns(h)).toBe(before);
  });

  test("an empty message, another user's chat and an exhausted quota are error frames", async () => {
    const owner = session();
    h.llm.script({ text: "private" });
    await h.parts.frames.handleChatFrame(owner, { type: "chat", request_id: "o1", text: "mine" });
    const chatId = (owner.frames.at(-1) as { chat_id: string }).chat_id;

    const s = session();
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "e1", text: " \u0000 " });
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "e2", text: "hi", chat_id: chatId });
    for (let i = 0; i < 50; i++) await h.parts.engine.quota.consume("chat_messages", s.userId, 50);
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "e3", text: "hi" });
    expect(s.frames).toEqual([
      { type: "error", code: "empty_message", message: "the message is empty", ref: "e1" },
      { type: "error", code: "not_found", message: "conversation not found", ref: "e2" },
      {
        type: "error",
        code: "quota_exceeded",
        message: "daily chat message quota of 50 reached",
        ref: "e3",
        retry_after_s: expect.any(Number),
      },
    ]);
  });

  test("a request id already running is refused", async () => {
    const s = session();
    h.llm.script({ text: "long", hang: true });
    const running = h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "dup", text: "a" });
    await s.firstText();
    await h.parts.frames.handleChatFrame(s, { type: "chat", request_id: "dup", text: "b" });
    expect(s.frames.at(-1)).toMatchObject({ type: "error", code: "duplicate_request", ref: "dup" });
    await h.parts.frames.handleChatFrame(s, { type: "chat_cancel", request_id: "dup" });
    await running;
  });

  test("floating chats over the socket carry ws_context to the model", async () => {
    const s = session();
    h.llm.script({ text: "It is an invoice." });
    const index = turns(h);
    await h.parts.frames.handleChatFrame(s, {
      type: "chat",
      request_id: "f1",
      surface: "floating",
      text: "what is this?",
      context: { app: "Preview", item: { type: "note", id: "n1", title: "Invoice" } },
    });
    const prompt = promptOf(h.llm, index);
    expect(prompt.system).toContain("floating assistant");
    expect(prompt.user).toContain('"title": "Invoice"');
  });
});
