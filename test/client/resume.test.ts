// Chat turns that survive the connection, as the SDK sees them: a scripted WebSocket server
// (support/scripted-server.ts) stands in for the gateway and the test plays the server's side frame
// by frame — dropping the socket after some chunks, replaying chunks the device already has,
// leaving a hole, refusing a resume — and checks what the device sends and what its ChatStream yields.
import { afterEach, describe, expect, test } from "bun:test";
import { type ChatStream, DeviceClient, type DeviceClientOptions } from "../../src/client";
import { eventually } from "../../src/shared/testing/eventually";
import { chunk, done, type Frame, ScriptedServer, type ScriptedSocket, welcome } from "./support/scripted-server";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function scriptedServer(): ScriptedServer {
  const server = new ScriptedServer();
  cleanups.push(() => server.stop());
  return server;
}

function client(server: ScriptedServer, options: Partial<DeviceClientOptions> = {}): DeviceClient {
  const device = new DeviceClient({
    url: server.url,
    deviceId: "device-1",
    token: () => "scripted",
    backoff: { initialMs: 10, maxMs: 20 },
    ...options,
  });
  cleanups.push(() => device.close());
  return device;
}

/** Answers the `hello` of socket `index` with a `welcome`, once the device opened it. */
async function welcomed(server: ScriptedServer, index: number, activeTurns: unknown[] = []): Promise<ScriptedSocket> {
  const socket = await server.socket(index);
  await socket.next("hello");
  socket.send(welcome(index, activeTurns));
  return socket;
}

/** A connected device and its first socket. */
async function connected(server: ScriptedServer, options: Partial<DeviceClientOptions> = {}) {
  const device = client(server, options);
  const connecting = device.connect();
  const socket = await welcomed(server, 0);
  await connecting;
  return { device, socket };
}

/** Everything a stream yields, and how it ends: its finish reason or its error code. */
async function drain(stream: ChatStream): Promise<{ seqs: number[]; end: string }> {
  const seqs: number[] = [];
  for await (const { seq } of stream) seqs.push(seq);
  const end = await stream.done.then(
    (final) => final.finish_reason,
    (error: { code?: string }) => `error:${error.code}`,
  );
  return { seqs, end };
}

const send = (socket: ScriptedSocket, frames: Frame[]) => {
  for (const frame of frames) socket.send(frame);
};
const chunks = (requestId: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, offset) => chunk(requestId, from + offset));
const hasSeq = (stream: ChatStream, seq: number) =>
  eventually(
    () => stream.lastSeq,
    (last) => last >= seq,
  );

describe("resuming chat turns across reconnects", () => {
  test("a socket dropped after three chunks: the device reconnects, resumes after seq 2 and yields 0..5 once each, then done", async () => {
    const server = scriptedServer();
    const { device, socket: first } = await connected(server);
    const closes: boolean[] = [];
    const surfaced: string[][] = [];
    device.on("close", ({ willReconnect }) => closes.push(willReconnect));
    device.on("active_turns", (turns) => surfaced.push(turns.map((turn) => turn.request_id)));
    const stream = device.chat({ text: "a long answer", requestId: "r1" });
    const yielded = drain(stream);
    expect(await first.next("chat")).toMatchObject({ request_id: "r1", text: "a long answer" });
    send(first, chunks("r1", 0, 2));
    await hasSeq(stream, 2);
    first.drop();

    // The server lists the turn as running: the stream follows it already, so the app is not told.
    const second = await welcomed(server, 1, [{ request_id: "r1", chat_id: "chat-1", last_seq: 3 }]);
    expect(await second.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "r1", after_seq: 2 });
    send(second, [...chunks("r1", 0, 5), done("r1")]);

    expect(await yielded).toEqual({ seqs: [0, 1, 2, 3, 4, 5], end: "stop" });
    expect({ lastSeq: stream.lastSeq, chatId: stream.chatId }).toEqual({ lastSeq: 5, chatId: "chat-1" });
    expect(closes).toEqual([true]);
    expect(surfaced).toEqual([[]]);
    expect(second.all("chat")).toEqual([]);
  });

  test("chunks the server sends twice on one socket are yielded once, in order", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    send(socket, [chunk("r1", 0), chunk("r1", 1), chunk("r1", 1), chunk("r1", 0), chunk("r1", 2), done("r1")]);
    expect(await drain(stream)).toEqual({ seqs: [0, 1, 2], end: "stop" });
  });

  test("a missing chunk fails the stream with chunk_gap, and resumeChat from its lastSeq picks the turn up again", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    send(socket, [chunk("r1", 0), chunk("r1", 1), chunk("r1", 3)]);
    expect(await drain(stream)).toEqual({ seqs: [0, 1], end: "error:chunk_gap" });
    expect(stream.lastSeq).toBe(1);

    const again = device.resumeChat(stream.requestId, { afterSeq: stream.lastSeq, chatId: stream.chatId });
    expect(await socket.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "r1", after_seq: 1 });
    send(socket, [...chunks("r1", 0, 3), done("r1")]);
    expect(await drain(again)).toEqual({ seqs: [2, 3], end: "stop" });
  });

  test("welcome.active_turns surfaces the turns no stream follows; resumeChat attaches to one after its afterSeq", async () => {
    const server = scriptedServer();
    const device = client(server);
    const surfaced: unknown[] = [];
    device.on("active_turns", (turns) => surfaced.push(turns));
    const connecting = device.connect();
    const turns = [
      { request_id: "elsewhere", chat_id: "chat-2", last_seq: 3 },
      { request_id: "before-restart", chat_id: "chat-3", last_seq: 0 },
    ];
    const socket = await welcomed(server, 0, turns);
    expect((await connecting).active_turns).toEqual(turns);
    expect(surfaced).toEqual([turns]);

    const stream = device.resumeChat("elsewhere", { afterSeq: 1, chatId: "chat-2" });
    expect(stream.chatId).toBe("chat-2");
    expect(device.resumeChat("elsewhere")).toBe(stream);
    expect(await socket.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "elsewhere", after_seq: 1 });
    send(socket, [...chunks("elsewhere", 0, 4).map((frame) => ({ ...frame, chat_id: "chat-2" })), done("elsewhere")]);
    expect(await drain(stream)).toEqual({ seqs: [2, 3, 4], end: "stop" });
    expect(socket.all("chat_resume")).toHaveLength(1);
  });

  test("a turn the server cannot resume fails its stream with not_resumable", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.resumeChat("gone");
    expect(await socket.next("chat_resume")).toMatchObject({ request_id: "gone", after_seq: -1 });
    socket.send({ type: "error", code: "not_resumable", message: "no such turn", ref: "gone" });
    expect(await drain(stream)).toEqual({ seqs: [], end: "error:not_resumable" });
  });

  test("close() fails the streams with connection_closed, while connected and while reconnecting", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const open = device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    send(socket, [chunk("r1", 0)]);
    await hasSeq(open, 0);
    device.close();
    expect(await drain(open)).toEqual({ seqs: [0], end: "error:connection_closed" });

    const other = await connected(scriptedServer(), { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const waiting = other.device.chat({ text: "hi", requestId: "r2" });
    await other.socket.next("chat");
    other.socket.drop();
    await eventually(
      () => other.device.status,
      (status) => status === "connecting",
    );
    other.device.close();
    expect(await drain(waiting)).toEqual({ seqs: [], end: "error:connection_closed" });
  });

  test("a close code the client does not reconnect after (4409 replaced) fails the streams with connection_closed", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    socket.close(4409, "replaced");
    expect(await drain(stream)).toEqual({ seqs: [], end: "error:connection_closed" });
    expect(device.status).toBe("closed");
  });

  test("cancelChat while the socket is down is sent after the resume once reconnected; the stream ends stopped", async () => {
    const server = scriptedServer();
    const { device, socket: first } = await connected(server);
    const stream = device.chat({ text: "hi", requestId: "r1" });
    await first.next("chat");
    send(first, [chunk("r1", 0)]);
    await hasSeq(stream, 0);
    first.drop();
    await eventually(
      () => device.status,
      (status) => status === "connecting",
    );
    expect(device.cancelChat("r1")).toBe(true);
    expect(device.cancelChat("not-followed")).toBe(false);

    const second = await welcomed(server, 1);
    await second.next("chat_cancel");
    expect(second.received.filter((frame) => frame.type !== "hello")).toEqual([
      { type: "chat_resume", request_id: "r1", after_seq: 0 },
      { type: "chat_cancel", request_id: "r1" },
    ]);
    send(second, [chunk("r1", 0), chunk("r1", 1), done("r1", "stopped")]);
    expect(await drain(stream)).toEqual({ seqs: [0, 1], end: "stopped" });
  });

  test("cancelChat on a resumed stream sends chat_cancel for its turn", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.resumeChat("elsewhere", { afterSeq: 0 });
    await socket.next("chat_resume");
    expect(device.cancelChat(stream.requestId)).toBe(true);
    expect(await socket.next("chat_cancel")).toEqual({ type: "chat_cancel", request_id: "elsewhere" });
    send(socket, [chunk("elsewhere", 1), done("elsewhere", "stopped")]);
    expect(await drain(stream)).toEqual({ seqs: [1], end: "stopped" });
  });

  test("a resume refused with server_restarting is sent again on the next connection; interrupted ends the stream like any finish", async () => {
    const server = scriptedServer();
    const { device, socket: first } = await connected(server);
    const stream = device.chat({ text: "hi", requestId: "r1" });
    await first.next("chat");
    send(first, [chunk("r1", 0)]);
    await hasSeq(stream, 0);
    first.close(1001, "going away");

    const draining = await welcomed(server, 1);
    await draining.next("chat_resume");
    draining.send({ type: "error", code: "server_restarting", message: "shutting down", ref: "r1" });
    draining.close(1001, "going away");

    const third = await welcomed(server, 2);
    expect(await third.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "r1", after_seq: 0 });
    send(third, [chunk("r1", 1), done("r1", "interrupted")]);
    expect(await drain(stream)).toEqual({ seqs: [0, 1], end: "interrupted" });
  });

  test("a resume refused with rate_limited is sent again after retry_after_ms; a chat refused so fails", async () => {
    const server = scriptedServer();
    const { device, socket } = await connected(server);
    const stream = device.resumeChat("elsewhere", { afterSeq: 0 });
    await socket.next("chat_resume");
    const refused = performance.now();
    socket.send({ type: "error", code: "rate_limited", message: "later", ref: "elsewhere", retry_after_ms: 100 });
    expect(await socket.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "elsewhere", after_seq: 0 });
    expect(performance.now() - refused).toBeGreaterThanOrEqual(90);
    send(socket, [chunk("elsewhere", 1), done("elsewhere")]);
    expect(await drain(stream)).toEqual({ seqs: [1], end: "stop" });

    const turn = device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    socket.send({ type: "error", code: "rate_limited", message: "later", ref: "r1", retry_after_ms: 100 });
    expect(await drain(turn)).toEqual({ seqs: [], end: "error:rate_limited" });
  });

  test("while reconnecting, chat fails at once with not_connected and resumeChat waits for the next welcome", async () => {
    const server = scriptedServer();
    const { device, socket: first } = await connected(server);
    first.drop();
    await eventually(
      () => device.status,
      (status) => status === "connecting",
    );
    expect(await drain(device.chat({ text: "hi" }))).toEqual({ seqs: [], end: "error:not_connected" });
    const stream = device.resumeChat("elsewhere", { afterSeq: 2 });

    const second = await welcomed(server, 1);
    expect(await second.next("chat_resume")).toEqual({ type: "chat_resume", request_id: "elsewhere", after_seq: 2 });
    send(second, [chunk("elsewhere", 3), done("elsewhere")]);
    expect(await drain(stream)).toEqual({ seqs: [3], end: "stop" });
    expect(second.all("chat_resume")).toHaveLength(1);
  });

  test("an idle or closed client, or a request id already followed, gets a stream that has failed already", async () => {
    const server = scriptedServer();
    const idle = client(server);
    expect(await drain(idle.resumeChat("r1"))).toEqual({ seqs: [], end: "error:not_connected" });
    const { device, socket } = await connected(server);
    device.chat({ text: "hi", requestId: "r1" });
    await socket.next("chat");
    expect(await drain(device.chat({ text: "again", requestId: "r1" }))).toEqual({
      seqs: [],
      end: "error:duplicate_request",
    });
    device.close();
    expect(await drain(device.resumeChat("r1"))).toEqual({ seqs: [], end: "error:not_connected" });
  });
});
