// Resumable chat turns end to end: the SDK against two real chat instances sharing PostgreSQL and
// Redis (test/chat/harness.ts), the model the fake OpenAI-compatible server streaming slowly. The
// device reaches the instances through a TCP proxy (support/proxy.ts) whose port stays the same:
// stopping it cuts the device's socket mid-turn, and listening again in front of the other instance
// makes the reconnect land there, away from the instance generating the turn.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ChatStream, DeviceClient } from "../../src/client";
import { eventually } from "../../src/shared/testing";
import { type ChatHarness, type ChatInstance, startChat } from "../chat/harness";
import { PortProxy } from "./support/proxy";

let h: ChatHarness;
let second: ChatInstance;

beforeAll(async () => {
  h = await startChat();
  second = await h.startInstance();
});
afterAll(() => h[Symbol.asyncDispose]());

const WORDS = Array.from({ length: 20 }, (_, i) => `word${i} `);
const port = (instance: ChatInstance) => Number(new URL(instance.url).port);
const user = () => `user-${crypto.randomUUID()}`;

/**
 * A device of the user reaching `instance` through a proxy of its own, closed with the test
 * context; `sent` records the frames it sends (through the SDK's WebSocket option).
 */
async function deviceBehindProxy(userId: string, instance: ChatInstance) {
  const proxy = new PortProxy();
  proxy.listen(port(instance));
  h.ctx.defer(() => proxy.stop());
  const sent: Array<{ type: string } & Record<string, unknown>> = [];
  class RecordingSocket extends WebSocket {
    override send(data: string): void {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const device = new DeviceClient({
    url: `ws://127.0.0.1:${proxy.port}/api/v1/ws/device`,
    deviceId: `device-${crypto.randomUUID().slice(0, 8)}`,
    token: () => h.token(userId),
    backoff: { initialMs: 50, maxMs: 200 },
    WebSocket: RecordingSocket as typeof WebSocket,
  });
  h.ctx.defer(() => device.close());
  await device.connect();
  return { device, proxy, sent };
}

/** Every chunk a stream yields (its seqs, the text of its deltas) and its final frame. */
async function read(stream: ChatStream) {
  const seqs: number[] = [];
  let text = "";
  for await (const { seq, chunk } of stream) {
    seqs.push(seq);
    const part = chunk as { type: string; delta?: string };
    if (part.type === "text-delta") text += part.delta;
  }
  return { seqs, text, done: await stream.done };
}

const upTo = (last: number) => Array.from({ length: last + 1 }, (_, seq) => seq);

describe("chat turns that survive the connection", () => {
  test("a socket cut mid-turn: the device reconnects to the other instance, resumes, and gets every chunk once", async () => {
    const { device, proxy, sent } = await deviceBehindProxy(user(), h.first);
    const closes: boolean[] = [];
    const surfaced: string[][] = [];
    device.on("close", ({ willReconnect }) => closes.push(willReconnect));
    device.on("active_turns", (turns) => surfaced.push(turns.map((turn) => turn.request_id)));
    const firstConnection = device.connectionId;
    h.llm.script({ chunks: WORDS, chunkDelayMs: 40 });
    const stream = device.chat({ text: "twenty words please" });
    const reading = read(stream);
    await eventually(
      () => stream.lastSeq,
      (last) => last >= 4,
    );
    proxy.stop();
    const cutAfter = stream.lastSeq;
    proxy.listen(port(second));

    const { seqs, text, done } = await reading;
    expect(done).toMatchObject({ type: "chat_done", finish_reason: "stop" });
    expect(text).toBe(WORDS.join(""));
    expect(seqs).toEqual(upTo(stream.lastSeq));
    expect(closes[0]).toBe(true);
    expect(device.connectionId).not.toBe(firstConnection);
    const resumes = sent.filter((frame) => frame.type === "chat_resume");
    expect(resumes).toEqual([{ type: "chat_resume", request_id: stream.requestId, after_seq: expect.any(Number) }]);
    expect(resumes[0]!.after_seq as number).toBeGreaterThanOrEqual(cutAfter);
    // The reconnect's welcome listed the turn as running, but this device follows it already.
    expect(surfaced.flat()).toEqual([]);
  }, 20_000);

  test("another device of the user learns of the running turn from welcome and attaches with resumeChat", async () => {
    const userId = user();
    const { device: laptop } = await deviceBehindProxy(userId, h.first);
    h.llm.script({ chunks: WORDS, chunkDelayMs: 40 });
    const started = laptop.chat({ text: "twenty words for both" });
    const onLaptop = read(started);
    await eventually(
      () => started.lastSeq,
      (last) => last >= 2,
    );

    const phone = new DeviceClient({
      url: second.wsUrl,
      deviceId: "phone",
      token: () => h.token(userId),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    h.ctx.defer(() => phone.close());
    const attached: ChatStream[] = [];
    phone.on("active_turns", (turns) => {
      for (const turn of turns) attached.push(phone.resumeChat(turn.request_id, { chatId: turn.chat_id }));
    });
    await phone.connect();
    expect(attached.map((stream) => stream.requestId)).toEqual([started.requestId]);

    const [laptopSide, phoneSide] = await Promise.all([onLaptop, read(attached[0]!)]);
    expect(phoneSide.text).toBe(WORDS.join(""));
    expect(phoneSide.seqs).toEqual(laptopSide.seqs);
    expect(phoneSide.done).toMatchObject({ message_id: laptopSide.done.message_id, finish_reason: "stop" });
    expect(attached[0]!.chatId).toBe(laptopSide.done.chat_id);
  }, 20_000);

  test("cancelChat on a resumed stream stops the turn where it runs: both streams end stopped", async () => {
    const userId = user();
    const { device: laptop } = await deviceBehindProxy(userId, h.first);
    h.llm.script({ chunks: WORDS, hang: true });
    const started = laptop.chat({ text: "never ending" });
    await eventually(
      () => started.lastSeq,
      (last) => last >= 2,
    );
    const { device: phone } = await deviceBehindProxy(userId, second);
    const resumed = phone.resumeChat(started.requestId);
    await eventually(
      () => resumed.lastSeq,
      (last) => last >= 2,
    );
    expect(phone.cancelChat(resumed.requestId)).toBe(true);
    const [onPhone, onLaptop] = await Promise.all([resumed.done, started.done]);
    expect(onPhone).toMatchObject({ finish_reason: "stopped" });
    expect(onLaptop).toMatchObject({ finish_reason: "stopped", message_id: onPhone.message_id });
  }, 20_000);

  test("a turn the server does not have fails with not_resumable", async () => {
    const { device } = await deviceBehindProxy(user(), second);
    const stream = device.resumeChat(crypto.randomUUID());
    expect(await stream.done.catch((error: { code?: string }) => error.code)).toBe("not_resumable");
  });
});
