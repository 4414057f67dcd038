// Chat over the device WebSocket: an SDK device sends `chat` / `chat_cancel` frames through the
// real gateway into the chat engine; the model is the fake OpenAI-compatible server (harness.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { DeviceClient, ErrorFrame } from "../../src/client";
import { eventually } from "../../src/shared/testing";
import { type ChatHarness, promptOf, startChat, turns, upstreamFor } from "./harness";

let h: ChatHarness;
beforeAll(async () => {
  h = await startChat();
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

function errors(device: DeviceClient) {
  const seen: ErrorFrame[] = [];
  device.on("error", (frame) => seen.push(frame));
  return seen;
}

describe("chat frames", () => {
  test("a streamed reply arrives in order as chat_chunk frames, then chat_done with usage", async () => {
    const device = await h.device(user());
    h.llm.script({ chunks: ["One", " two", " three"], usage: { prompt: 9, completion: 3 } });
    const stream = device.chat({ text: "count" });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const done = await stream.done;
    expect(chunks.map((frame) => frame.seq)).toEqual(chunks.map((_, index) => index));
    const deltas = chunks.flatMap((frame) => {
      const chunk = frame.chunk as { type: string; delta?: string };
      return chunk.type === "text-delta" ? [chunk.delta] : [];
    });
    expect(deltas).toEqual(["One", " two", " three"]);
    expect(done).toMatchObject({
      type: "chat_done",
      request_id: stream.requestId,
      chat_id: chunks[0]?.chat_id,
      finish_reason: "stop",
      usage: { input_tokens: 9, output_tokens: 3, total_tokens: 12 },
    });
  });

  test("the device that sent the chat is the one whose tools run", async () => {
    const userId = user();
    const ran: string[] = [];
    const sender = await h.device(userId, { task_list: () => ran.push("sender") && [] });
    await h.device(userId, { task_list: () => ran.push("newer") && [] });
    h.llm.script({ toolCalls: [{ name: "task_list", args: {} }] }, { text: "Nothing to do." });
    await sender.chat({ text: "tasks?" }).done;
    expect(ran).toEqual(["sender"]);
  });

  test("chat_cancel stops the upstream model request, ends with chat_done stopped and stores the part streamed", async () => {
    const userId = user();
    const device = await h.device(userId);
    h.llm.script({ text: "this goes on and on", hang: true });
    const stream = device.chat({ text: "talk r2" });
    const upstream = await upstreamFor(h, "talk r2");
    const firstText = (async () => {
      for await (const chunk of stream) if ((chunk.chunk as { type: string }).type === "text-delta") return;
    })();
    await firstText;
    device.cancelChat(stream.requestId);
    const done = await stream.done;
    expect(done).toMatchObject({ type: "chat_done", finish_reason: "stopped" });
    await upstream.abortedSignal;
    expect(upstream.aborted).toBe(true);
    const token = await h.token(userId);
    const stored = (await (await h.get(token, `/conversations/${done.chat_id}`)).json()) as {
      messages: Array<{ status: string; parts: Array<{ type: string; text?: string }> }>;
    };
    expect(stored.messages.map((message) => message.status)).toEqual(["completed", "stopped"]);
    expect(stored.messages[1]?.parts.find((part) => part.type === "text")?.text).toBe("this goes on and on");
  });

  test("a closed socket does not stop its running chats: the turn ends and is stored", async () => {
    const userId = user();
    const device = await h.device(userId);
    h.llm.script({ chunks: ["done ", "without you"], firstTokenDelayMs: 100, chunkDelayMs: 100 });
    const stream = device.chat({ text: "talk r3" });
    const upstream = await upstreamFor(h, "talk r3");
    device.close();
    await stream.done.catch(() => {});
    const token = await h.token(userId);
    const listed = await eventually(
      async () => (await (await h.get(token, "/conversations")).json()) as { items: Array<{ id: string }> },
      (body) => body.items?.length === 1,
    );
    const stored = await eventually(
      async () =>
        (await (await h.get(token, `/conversations/${listed.items[0]?.id}`)).json()) as {
          messages: Array<{ status: string }>;
        },
      (body) => body.messages?.length === 2,
    );
    expect(upstream.aborted).toBe(false);
    expect(stored.messages.map((message) => message.status)).toEqual(["completed", "completed"]);
  });

  test("malformed chat frames get an error frame with the request id as ref; the model is not called", async () => {
    const device = await h.device(user());
    const seen = errors(device);
    const before = turns(h);
    device.send({ type: "chat", request_id: "m1", surface: "home" });
    device.send({ type: "chat", request_id: "m2", text: "hi", surface: "popup" });
    device.send({ type: "chat", request_id: "m3", text: "hi", surface: "home", chat_id: "not-a-uuid" });
    device.send({ type: "chat", request_id: "m4", text: "hi", surface: "floating", context: { app: 5 } });
    device.send({ type: "chat_cancel" });
    await eventually(
      () => seen.length,
      (count) => count >= 5,
    );
    expect(seen.map((frame) => [frame.code, frame.ref]).sort()).toEqual(
      [
        ["invalid_frame", "m1"],
        ["invalid_frame", "m2"],
        ["invalid_frame", "m3"],
        ["invalid_frame", "m4"],
        ["invalid_frame", undefined],
      ].sort(),
    );
    expect(turns(h)).toBe(before);
    expect(device.status).toBe("open");
  });

  test("an empty message, another user's chat and an exhausted quota are clear error frames", async () => {
    const owner = await h.device(user());
    h.llm.script({ text: "private" });
    const { chat_id: chatId } = await owner.chat({ text: "mine" }).done;
    const userId = user();
    const device = await h.device(userId);
    const failure = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (error: { code: string; message: string; retryAfterMs?: number }) => error,
      );
    expect(await failure(device.chat({ text: " \u0000 " }).done)).toMatchObject({ code: "empty_message" });
    expect(await failure(device.chat({ text: "hi", chatId }).done)).toMatchObject({ code: "not_found" });
    for (let i = 0; i < 50; i++) await h.parts.engine.quota.consume("chat_messages", userId, 50);
    const quota = await failure(device.chat({ text: "hi" }).done);
    expect(quota).toMatchObject({ code: "quota_exceeded", message: "daily chat message quota of 50 reached" });
    expect(quota?.retryAfterMs).toBeGreaterThan(0);
  });

  test("a request id already running is refused", async () => {
    const device = await h.device(user());
    const seen = errors(device);
    h.llm.script({ text: "long", hang: true });
    const stream = device.chat({ text: "dup one", requestId: "dup" });
    await upstreamFor(h, "dup one");
    device.send({ type: "chat", request_id: "dup", surface: "home", text: "dup two" });
    await eventually(
      () => seen.length,
      (count) => count > 0,
    );
    expect(seen[0]).toMatchObject({ code: "duplicate_request", ref: "dup" });
    device.cancelChat("dup");
    await stream.done.catch(() => {});
  });

  test("floating chats over the socket carry ws_context to the model", async () => {
    const device = await h.device(user());
    h.llm.script({ text: "It is an invoice." });
    const index = turns(h);
    await device.chat({
      text: "what is this?",
      surface: "floating",
      context: { app: "Preview", item: { type: "note", id: "n1", title: "Invoice" } },
    }).done;
    const prompt = promptOf(h.llm, index);
    expect(prompt.system).toContain("floating assistant");
    expect(prompt.user).toContain('"title": "Invoice"');
  });
});
