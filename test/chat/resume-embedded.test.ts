// Resumable turns in embedded mode (no REDIS_URL): the in-process turn log behind one chat service
// on the real PostgreSQL, the fake OpenAI-compatible server as the model. A device that loses its
// socket mid-turn resumes it on a new one; an SSE client resumes with Last-Event-ID; a stop ends the
// turn as `stopped` for every follower and stores what it had streamed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ChatServiceModule, createChatService } from "../../src/chat";
import { createTestContext, type FakeOpenAi, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import { wsUrl } from "./gateway/helpers";
import { readSse } from "./harness";
import {
  chunkFrames,
  deviceSocket,
  type Frame,
  framesOf,
  isEnd,
  type MessageView,
  readEvents,
  textOf,
  turnRoutes,
  untilChunks,
  untilEnd,
} from "./support-resume";

let ctx: TestContext;
let llm: FakeOpenAi;
let url: string;
let chat: ChatServiceModule;
let routes: ReturnType<typeof turnRoutes>;
beforeAll(async () => {
  ctx = await createTestContext();
  llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  llm.onStructured(() => ({ json: { facts: [] } }));
  const server = await ctx.start([(platform) => createChatService(platform)], {
    service: "chat",
    redis: false,
    env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", CHAT_MAX_RUNNING_TURNS: "2" },
  });
  expect(server.platform.redis).toBeUndefined();
  url = server.url;
  chat = server.modules[0] as ChatServiceModule;
  routes = turnRoutes(url);
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const WORDS = Array.from({ length: 14 }, (_, i) => `word${i} `);
const socketOf = async (userId: string) => deviceSocket(wsUrl(url), await ctx.token(userId));

describe("embedded mode: resume", () => {
  test("a new socket resumes a turn whose socket closed mid-way: exactly the remaining chunks, then chat_done", async () => {
    const userId = user();
    llm.script({ chunks: WORDS, firstTokenDelayMs: 20, chunkDelayMs: 60 });
    const first = await socketOf(userId);
    first.send({ type: "chat", request_id: "e1", text: "a long answer please" });
    await untilChunks(first, "e1", 5);
    first.ws.close();
    await first.closed;
    const seen = chunkFrames(framesOf(first, "e1"));
    const lastSeq = seen.at(-1)?.seq as number;
    expect(seen.map((frame) => frame.seq)).toEqual([...Array(lastSeq + 1).keys()]);
    // The turn goes on without its socket.
    expect(chat.turns.runningHere).toBe(1);

    const second = await socketOf(userId);
    expect(second.welcome.active_turns).toEqual([
      { request_id: "e1", chat_id: seen[0]?.chat_id, last_seq: expect.any(Number) },
    ]);
    second.send({ type: "chat_resume", request_id: "e1", after_seq: lastSeq });
    const after = await untilEnd(second, "e1");
    const resumed = chunkFrames(after);
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed.map((frame) => frame.seq)).toEqual(resumed.map((_, i) => lastSeq + 1 + i));
    expect(resumed.every((frame) => frame.chat_id === seen[0]?.chat_id)).toBe(true);
    expect(textOf([...seen, ...resumed].map((frame) => frame.chunk))).toBe(WORDS.join(""));
    expect(after.at(-1)).toMatchObject({ type: "chat_done", request_id: "e1", finish_reason: "stop" });
    expect(after.filter(isEnd)).toHaveLength(1);
    // The whole chunk list, as a device that never lost its socket would have had it.
    const whole = [...seen, ...resumed].map((frame) => (frame.chunk as { type: string }).type);
    expect(whole[0]).toBe("start");
    expect(whole.at(-1)).toBe("finish");

    // The turn is stored whole, and nothing runs any more.
    const token = await ctx.token(userId);
    const conversation = (await (await routes.conversation(token, seen[0]?.chat_id as string)).json()) as {
      messages: MessageView[];
    };
    const stored = conversation.messages.at(-1);
    expect(stored).toMatchObject({ role: "assistant", status: "completed", id: after.at(-1)?.message_id as string });
    expect(partsText(stored)).toBe(WORDS.join(""));
    expect(chat.turns.runningHere).toBe(0);
    second.ws.close();
  }, 15_000);

  test("GET stream with Last-Event-ID picks an SSE turn up where the client dropped it, and after its end", async () => {
    const userId = user();
    const token = await ctx.token(userId);
    llm.script({ chunks: WORDS, firstTokenDelayMs: 20, chunkDelayMs: 40 });
    const controller = new AbortController();
    const response = await fetch(`${url}/api/v1/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ text: "stream and drop" }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const chatId = response.headers.get("x-chat-id")!;
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const received = await readEvents(reader, 4);
    controller.abort();
    await reader.cancel().catch(() => {});
    const lastId = received.at(-1)?.id;
    expect(received.map((event) => event.id)).toEqual(received.map((_, seq) => String(seq)));

    const resumed = await routes.stream(token, chatId, lastId);
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get("x-turn-id")).toBe(response.headers.get("x-turn-id"));
    const rest = await readSse(resumed);
    expect(rest.done).toBe(true);
    expect(rest.ids).toEqual(rest.chunks.map((_, i) => String(Number(lastId) + 1 + i)));
    expect(textOf([...received.map((event) => event.chunk), ...rest.chunks])).toBe(WORDS.join(""));
    expect(rest.chunks.at(-1)).toMatchObject({ type: "finish" });

    // Ended now: without Last-Event-ID there is nothing to resume; with it, the tail is still kept.
    expect((await routes.stream(token, chatId)).status).toBe(204);
    const again = await readSse(await routes.stream(token, chatId, lastId));
    expect(again).toEqual(rest);
    // Someone else asking for that conversation learns nothing of it.
    expect((await routes.stream(await ctx.token(user()), chatId, lastId)).status).toBe(404);
  }, 15_000);
});

describe("embedded mode: stop", () => {
  test("POST stop ends a socket turn as stopped for every follower and stores the partial text", async () => {
    const userId = user();
    const token = await ctx.token(userId);
    llm.script({ chunks: WORDS, chunkDelayMs: 60, hang: true });
    const device = await socketOf(userId);
    device.send({ type: "chat", request_id: "s1", text: "stop me halfway" });
    const started = await untilChunks(device, "s1", 5);
    const chatId = started[0]?.chat_id as string;
    const follower = await routes.stream(token, chatId);
    expect(follower.status).toBe(200);

    const stop = await routes.stop(token, chatId);
    expect(stop.status).toBe(202);
    expect(await stop.json()).toEqual({ request_id: "s1", stopping: true });
    const frames = await untilEnd(device, "s1");
    expect(frames.at(-1)).toMatchObject({
      type: "chat_done",
      request_id: "s1",
      chat_id: chatId,
      finish_reason: "stopped",
    });
    const streamedText = textOf(chunkFrames(frames).map((frame) => frame.chunk));
    expect(streamedText.length).toBeGreaterThan(0);
    expect(WORDS.join("").startsWith(streamedText)).toBe(true);
    expect(streamedText).not.toBe(WORDS.join(""));

    // The SSE follower saw the same chunks and its stream ended.
    const followed = await readSse(follower);
    expect(followed.done).toBe(true);
    expect(followed.chunks as unknown[]).toEqual(chunkFrames(frames).map((frame) => frame.chunk));
    expect(followed.chunks.at(-1)).toEqual({ type: "abort", reason: "stopped" });

    const conversation = (await (await routes.conversation(token, chatId)).json()) as { messages: MessageView[] };
    const assistant = conversation.messages.at(-1);
    expect(assistant).toMatchObject({ role: "assistant", status: "stopped" });
    expect(assistant?.id).toBe(frames.at(-1)?.message_id as string);
    expect(partsText(assistant)).toBe(streamedText);
    // A resume after the stop replays the same turn, ending as stopped.
    device.send({ type: "chat_resume", request_id: "s1", after_seq: -1 });
    const replay = await waitForSecondEnd(device, "s1");
    expect(replay.at(-1)).toMatchObject({ type: "chat_done", finish_reason: "stopped" });
    expect(textOf(chunkFrames(replay).map((frame) => frame.chunk))).toBe(streamedText);
    // Stopping again: nothing runs.
    const twice = await routes.stop(token, chatId);
    expect(twice.status).toBe(409);
    device.ws.close();
  }, 15_000);

  test("POST stop ends an SSE turn: the stream ends and the message is stored as stopped", async () => {
    const userId = user();
    const token = await ctx.token(userId);
    llm.script({ chunks: WORDS, chunkDelayMs: 60, hang: true });
    const response = await fetch(`${url}/api/v1/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ text: "stream then stop" }),
    });
    const chatId = response.headers.get("x-chat-id")!;
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const before = await readEvents(reader, 5);
    expect((await routes.stop(token, chatId)).status).toBe(202);
    const rest = await readSse(new Response(await readRest(reader)));
    // The stream tells the client why it ended, then closes.
    expect(rest.done).toBe(true);
    expect(rest.chunks.at(-1)).toEqual({ type: "abort", reason: "stopped" });
    const ids = [...before.map((event) => event.id), ...rest.ids];
    expect(ids).toEqual(ids.map((_, seq) => String(seq)));
    const conversation = (await (await routes.conversation(token, chatId)).json()) as { messages: MessageView[] };
    const assistant = conversation.messages.at(-1);
    expect(assistant?.status).toBe("stopped");
    const stored = partsText(assistant);
    expect(stored).toBe(textOf([...before.map((event) => event.chunk), ...rest.chunks]));
    expect(stored.length).toBeGreaterThan(0);
    expect(WORDS.join("").startsWith(stored)).toBe(true);
    expect(chat.turns.runningHere).toBe(0);
  }, 15_000);
});

const partsText = (message: MessageView | undefined) =>
  (message?.parts ?? [])
    .filter((part) => part.type === "text")
    .map((part) => part.text ?? "")
    .join("");

/** The request's frames after its first end, up to its second (a resume of the same turn). */
async function waitForSecondEnd(socket: { frames: Frame[] }, requestId: string): Promise<Frame[]> {
  const frames = await untilEnd(socket, requestId).then(async () => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const all = framesOf(socket, requestId);
      if (all.filter(isEnd).length >= 2 || Date.now() > deadline) return all;
      await Bun.sleep(5);
    }
  });
  const firstEnd = frames.findIndex(isEnd);
  return frames.slice(firstEnd + 1);
}

async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += decoder.decode(value, { stream: true });
  }
}

describe("embedded mode: the running-turn cap", () => {
  test("a burst of concurrent turns starts CHAT_MAX_RUNNING_TURNS of them; the rest get 429 too_many_chats", async () => {
    const token = await ctx.token(user());
    for (let i = 0; i < 6; i++) llm.script({ text: `burst answer ${i}`, hang: true });
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        fetch(`${url}/api/v1/chat`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "text/event-stream",
          },
          body: JSON.stringify({ text: `burst ${i}` }),
        }),
      ),
    );
    const started = responses.filter((response) => response.status === 200);
    const refused = responses.filter((response) => response.status === 429);
    expect([started.length, refused.length]).toEqual([2, 4]);
    for (const response of refused) {
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("too_many_chats");
    }
    expect(chat.turns.runningHere).toBe(2);
    for (const response of started) {
      expect((await routes.stop(token, response.headers.get("x-chat-id")!)).status).toBe(202);
      expect((await readSse(response)).done).toBe(true);
    }
    expect(chat.turns.runningHere).toBe(0);
  }, 15_000);
});
