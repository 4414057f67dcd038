// Resumable turns through one real chat service (PostgreSQL, Redis, the fake OpenAI-compatible
// model) with CHAT_RESUME_TTL_S=1 and CHAT_MAX_RUNNING_TURNS=2: an ended turn is replayed while its
// log is kept and refused after; what is not the caller's is never resumed, listed or stopped;
// malformed resumes are refused; the running-turn cap and the per-tier rate limit apply to it;
// `welcome.active_turns` shows a running turn to the user's other devices only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventually } from "../../src/shared/testing";
import { type ChatHarness, readSse, startChat, turns, upstreamFor } from "./harness";
import {
  chunkFrames,
  deviceSocket,
  type Frame,
  framesOf,
  isEnd,
  textOf,
  turnRoutes,
  untilChunks,
  untilEnd,
} from "./support-resume";

const TTL_S = 1;
let h: ChatHarness;
let routes: ReturnType<typeof turnRoutes>;
beforeAll(async () => {
  h = await startChat({ env: { CHAT_RESUME_TTL_S: String(TTL_S), CHAT_MAX_RUNNING_TURNS: "2" } });
  routes = turnRoutes(h.url);
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const WORDS = ["Resumable ", "turns ", "keep ", "their ", "chunks ", "for ", "a ", "while."];
const socketOf = async (userId: string) => deviceSocket(h.first.wsUrl, await h.token(userId));
/** Past the TTL of a turn that ended before `since` (a little margin for Redis's expiry). */
const pastTtl = (since: number) => Bun.sleep(Math.max(0, since + TTL_S * 1000 + 500 - Date.now()));
const errorCode = async (response: Response) => ((await response.json()) as { error: { code: string } }).error.code;

describe("an ended turn is resumable for CHAT_RESUME_TTL_S", () => {
  test("over the socket: every chunk then chat_done within the TTL, not_resumable after it", async () => {
    const userId = user();
    h.llm.script({ chunks: WORDS });
    const device = await socketOf(userId);
    device.send({ type: "chat", request_id: "t1", text: "tell me" });
    const own = await untilEnd(device, "t1");
    const endedBy = Date.now();
    expect(own.at(-1)).toMatchObject({ type: "chat_done", request_id: "t1", finish_reason: "stop" });
    expect(textOf(chunkFrames(own).map((frame) => frame.chunk))).toBe(WORDS.join(""));

    const other = await socketOf(userId);
    other.send({ type: "chat_resume", request_id: "t1", after_seq: -1 });
    const replay = await untilEnd(other, "t1");
    // The same chunks with the same seqs and chat id, then the same chat_done, once.
    expect(replay).toEqual(own);
    expect(replay.filter(isEnd)).toHaveLength(1);

    other.send({ type: "chat_resume", request_id: "t1", after_seq: 3 });
    await eventually(
      () => framesOf(other, "t1").filter(isEnd),
      (ends) => ends.length === 2,
    );
    const tail = framesOf(other, "t1").slice(replay.length);
    expect(tail).toEqual(own.filter((frame) => frame.type !== "chat_chunk" || (frame.seq as number) > 3));

    await pastTtl(endedBy);
    other.send({ type: "chat_resume", request_id: "t1", after_seq: -1 });
    const refused = await other.next("error");
    expect(refused).toMatchObject({ type: "error", code: "not_resumable", ref: "t1" });
    expect(framesOf(other, "t1").filter((frame) => frame.type === "chat_chunk")).toHaveLength(
      chunkFrames(replay).length + chunkFrames(tail).length,
    );
    device.ws.close();
    other.ws.close();
  }, 15_000);

  test("over HTTP: Last-Event-ID replays the tail within the TTL, 204 after it; 204 without it once ended", async () => {
    const userId = user();
    const token = await h.token(userId);
    h.llm.script({ chunks: WORDS });
    const response = await h.chatSse(token, { text: "stream it" });
    expect(response.status).toBe(200);
    const chatId = response.headers.get("x-chat-id")!;
    const turnId = response.headers.get("x-turn-id");
    const original = await readSse(response);
    const endedBy = Date.now();
    expect(original.done).toBe(true);
    expect(original.ids).toEqual(original.chunks.map((_, seq) => String(seq)));

    // Without Last-Event-ID the client had the whole reply: nothing is running, nothing to resume.
    expect((await routes.stream(token, chatId)).status).toBe(204);

    const resumed = await routes.stream(token, chatId, "2");
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get("content-type")).toContain("text/event-stream");
    expect(resumed.headers.get("x-chat-id")).toBe(chatId);
    expect(resumed.headers.get("x-turn-id")).toBe(turnId);
    const tail = await readSse(resumed);
    expect(tail.ids).toEqual(original.ids.slice(3));
    expect(tail.chunks).toEqual(original.chunks.slice(3));
    expect(tail.done).toBe(true);

    // Caught up to the last chunk already: only the end.
    const last = original.ids.at(-1)!;
    const nothingLeft = await routes.stream(token, chatId, last);
    expect(nothingLeft.status).toBe(200);
    expect(await readSse(nothingLeft)).toEqual({ chunks: [], ids: [], done: true });

    await pastTtl(endedBy);
    const expired = await routes.stream(token, chatId, "2");
    expect(expired.status).toBe(204);
    expect(await expired.text()).toBe("");
  }, 15_000);
});

describe("a turn that failed", () => {
  test("is resumed as the same error while it is kept", async () => {
    const userId = user();
    h.llm.script({ error: { status: 401, message: "upstream refused" } });
    const device = await socketOf(userId);
    device.send({ type: "chat", request_id: "broken", text: "fail please" });
    const own = await untilEnd(device, "broken");
    expect(own.at(-1)).toMatchObject({ type: "error", code: "llm_unavailable", ref: "broken" });
    const other = await socketOf(userId);
    other.send({ type: "chat_resume", request_id: "broken", after_seq: -1 });
    const replay = await untilEnd(other, "broken");
    expect(replay.at(-1)).toEqual({
      type: "error",
      code: "llm_unavailable",
      message: own.at(-1)?.message,
      ref: "broken",
    });
    expect(chunkFrames(replay)).toEqual(chunkFrames(own));
    device.ws.close();
    other.ws.close();
  });
});

describe("only the caller's own turns", () => {
  test("a request id never used is not_resumable", async () => {
    const device = await socketOf(user());
    device.send({ type: "chat_resume", request_id: "never-used", after_seq: -1 });
    const answer = await untilEnd(device, "never-used");
    expect(answer).toEqual([{ type: "error", code: "not_resumable", message: expect.any(String), ref: "never-used" }]);
    device.ws.close();
  });

  test("another user's running turn: not_resumable, and 404 on its stream and its stop", async () => {
    const owner = user();
    const ownerToken = await h.token(owner);
    h.llm.script({ text: "a private answer that keeps going", hang: true });
    const device = await socketOf(owner);
    device.send({ type: "chat", request_id: "mine", text: "private" });
    const started = await untilChunks(device, "mine", 1);
    const chatId = started[0]?.chat_id as string;
    expect(chatId).toBeString();

    const strangerId = user();
    const strangerToken = await h.token(strangerId);
    const stranger = await socketOf(strangerId);
    expect(stranger.welcome.active_turns).toEqual([]);
    stranger.send({ type: "chat_resume", request_id: "mine", after_seq: -1 });
    expect(await stranger.next("error")).toMatchObject({ code: "not_resumable", ref: "mine" });
    expect(chunkFrames(stranger.frames)).toEqual([]);
    // A stop from the stranger's socket reaches nothing either.
    stranger.send({ type: "chat_cancel", request_id: "mine" });

    for (const lastEventId of [undefined, "0"]) {
      const stream = await routes.stream(strangerToken, chatId, lastEventId);
      expect({ lastEventId, status: stream.status }).toEqual({ lastEventId, status: 404 });
      expect(await errorCode(stream)).toBe("not_found");
    }
    const stop = await routes.stop(strangerToken, chatId);
    expect(stop.status).toBe(404);
    expect(await errorCode(stop)).toBe("not_found");

    // The owner's turn is untouched: still running, and the owner can follow and stop it.
    await Bun.sleep(100);
    expect(framesOf(device, "mine").some(isEnd)).toBe(false);
    const follow = await routes.stream(ownerToken, chatId);
    expect(follow.status).toBe(200);
    const ownStop = await routes.stop(ownerToken, chatId);
    expect(ownStop.status).toBe(202);
    expect(await ownStop.json()).toEqual({ request_id: "mine", stopping: true });
    expect((await untilEnd(device, "mine")).at(-1)).toMatchObject({ type: "chat_done", finish_reason: "stopped" });
    expect((await readSse(follow)).done).toBe(true);
    device.ws.close();
    stranger.ws.close();
  }, 15_000);

  test("no token: 401 on the stream and the stop routes", async () => {
    const chatId = crypto.randomUUID();
    for (const token of [undefined, "nonsense", await h.ctx.token(user(), "free", { expiresInS: -60 })]) {
      const stream = await routes.stream(token, chatId, "1");
      const stop = await routes.stop(token, chatId);
      expect({ token, stream: stream.status, stop: stop.status }).toEqual({ token, stream: 401, stop: 401 });
    }
  });
});

describe("malformed resumes", () => {
  test("chat_resume frames out of shape get invalid_frame with their ref; the socket stays usable", async () => {
    const device = await socketOf(user());
    const malformed: Array<[Frame, string | undefined]> = [
      [{ type: "chat_resume", request_id: "m-minus-two", after_seq: -2 }, "m-minus-two"],
      [{ type: "chat_resume", request_id: "m-string", after_seq: "3" }, "m-string"],
      [{ type: "chat_resume", request_id: "m-fraction", after_seq: 1.5 }, "m-fraction"],
      [{ type: "chat_resume", request_id: "", after_seq: 0 }, ""],
      [{ type: "chat_resume", request_id: 42, after_seq: 0 }, undefined],
      [{ type: "chat_resume", after_seq: 0 }, undefined],
    ];
    for (const [frame] of malformed) device.send(frame);
    const errors = await eventually(
      () => device.frames.filter((frame) => frame.type === "error"),
      (seen) => seen.length >= malformed.length,
    );
    expect(errors).toHaveLength(malformed.length);
    for (const [index, [, ref]] of malformed.entries()) {
      expect(errors[index]).toMatchObject({ type: "error", code: "invalid_frame", message: expect.any(String) });
      if (ref !== undefined) expect(errors[index]?.ref).toBe(ref);
      else expect(errors[index]?.ref).toBeUndefined();
    }
    // after_seq may be left out: it defaults to -1, a well-formed resume of nothing.
    device.send({ type: "chat_resume", request_id: "m-default" });
    expect(await untilEnd(device, "m-default")).toEqual([expect.objectContaining({ code: "not_resumable" })]);
    expect(device.ws.readyState).toBe(WebSocket.OPEN);
    device.ws.close();
  });

  test("a Last-Event-ID that is not a chunk seq is a 422", async () => {
    const token = await h.token(user());
    const chatId = crypto.randomUUID();
    for (const lastEventId of ["abc", "-1", "1e3", "1.5", "+2", "0x10", "1234567890123456", ""]) {
      const response = await routes.stream(token, chatId, lastEventId);
      expect({ lastEventId, status: response.status }).toEqual({ lastEventId, status: 422 });
    }
    // Well-formed, of a conversation that is not the caller's: 404, not 422.
    expect((await routes.stream(token, chatId, "123456789012345")).status).toBe(404);
    expect((await routes.stream(token, "not-a-uuid", "1")).status).toBe(422);
    expect((await routes.stop(token, "not-a-uuid")).status).toBe(422);
  });
});

describe("limits", () => {
  test("a user at CHAT_MAX_RUNNING_TURNS gets 429 too_many_chats for another turn, over HTTP and the socket", async () => {
    const userId = user();
    const token = await h.token(userId);
    h.llm.script({ text: "first long one", hang: true }, { text: "second long one", hang: true });
    const first = await h.chatSse(token, { text: "cap-one" });
    const second = await h.chatSse(token, { text: "cap-two" });
    expect([first.status, second.status]).toEqual([200, 200]);
    // Both are generating: the model has been asked for each.
    await upstreamFor(h, "cap-one");
    await upstreamFor(h, "cap-two");
    const requestsBefore = turns(h);

    const third = await h.chatSse(token, { text: "three" });
    expect(third.status).toBe(429);
    expect(await errorCode(third)).toBe("too_many_chats");
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    const json = await h.chatJson(token, { text: "three, whole" });
    expect(json.status).toBe(429);
    expect(await errorCode(json)).toBe("too_many_chats");

    const device = await socketOf(userId);
    expect((device.welcome.active_turns as Frame[]).map((turn) => turn.chat_id).sort()).toEqual(
      [first.headers.get("x-chat-id"), second.headers.get("x-chat-id")].sort(),
    );
    device.send({ type: "chat", request_id: "over-cap", text: "three, socket" });
    expect(await device.next("error")).toMatchObject({ code: "too_many_chats", ref: "over-cap" });
    // Refused before the model was asked anything.
    expect(turns(h)).toBe(requestsBefore);

    // Once one turn ends, its place is free again.
    expect((await routes.stop(token, first.headers.get("x-chat-id")!)).status).toBe(202);
    expect((await readSse(first)).done).toBe(true);
    h.llm.script({ text: "fits now" });
    const fourth = await h.chatJson(token, { text: "four" });
    expect(fourth.status).toBe(200);
    expect(((await fourth.json()) as { text: string }).text).toBe("fits now");
    expect((await routes.stop(token, second.headers.get("x-chat-id")!)).status).toBe(202);
    expect((await readSse(second)).done).toBe(true);
    device.ws.close();
  }, 20_000);

  test("chat_resume frames count against the tier's chat rate limit", async () => {
    const device = await socketOf(user());
    const refs = Array.from({ length: 25 }, (_, i) => `flood-${i}`);
    // One after the other (a burst would also meet the connection's cap on followed turns).
    const answers: Frame[] = [];
    for (const ref of refs) {
      device.send({ type: "chat_resume", request_id: ref, after_seq: -1 });
      answers.push(...(await untilEnd(device, ref)));
    }
    expect(answers.map((frame) => frame.ref)).toEqual(refs);
    const limited = answers.filter((frame) => frame.code === "rate_limited");
    // Free tier: 20 requests a minute, shared with chat frames and the chat routes: the last 5 are refused.
    expect(limited.map((frame) => frame.ref)).toEqual(refs.slice(20));
    for (const frame of limited) {
      expect(frame).toEqual({
        type: "error",
        code: "rate_limited",
        message: expect.any(String),
        ref: expect.any(String),
        retry_after_ms: expect.any(Number),
      });
      expect(frame.retry_after_ms as number).toBeGreaterThan(0);
    }
    expect(answers.filter((frame) => frame.code === "not_resumable")).toHaveLength(20);
    // The same budget: a chat frame now is refused too, before any model call.
    device.send({ type: "chat", request_id: "after-flood", text: "hi" });
    expect(await untilEnd(device, "after-flood")).toEqual([expect.objectContaining({ code: "rate_limited" })]);
    device.ws.close();
  }, 15_000);
});

describe("welcome.active_turns", () => {
  test("lists a running turn to the user's second device, not to another user; not once it ended", async () => {
    const userId = user();
    h.llm.script({ text: "still generating this", hang: true });
    const laptop = await socketOf(userId);
    expect(laptop.welcome.active_turns).toEqual([]);
    laptop.send({ type: "chat", request_id: "active-1", text: "go" });
    const started = await untilChunks(laptop, "active-1", 2);
    const chatId = started[0]?.chat_id;

    const phone = await socketOf(userId);
    expect(phone.welcome.active_turns).toEqual([
      { request_id: "active-1", chat_id: chatId, last_seq: expect.any(Number) },
    ]);
    const [turn] = phone.welcome.active_turns as Array<{ last_seq: number }>;
    expect(turn!.last_seq).toBeGreaterThanOrEqual(1);
    expect(turn!.last_seq).toBeLessThanOrEqual((chunkFrames(framesOf(laptop, "active-1")).at(-1)?.seq as number) ?? -1);

    const stranger = await socketOf(user());
    expect(stranger.welcome.active_turns).toEqual([]);

    // Stopped from the other device, it ends for the one that started it, and is listed no more.
    phone.send({ type: "chat_cancel", request_id: "active-1" });
    expect((await untilEnd(laptop, "active-1")).at(-1)).toMatchObject({
      type: "chat_done",
      finish_reason: "stopped",
    });
    const later = await socketOf(userId);
    expect(later.welcome.active_turns).toEqual([]);
    for (const socket of [laptop, phone, stranger, later]) socket.ws.close();
  }, 15_000);
});
