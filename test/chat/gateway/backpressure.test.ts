// A device that stops reading: a hand-written WebSocket client over node:net that completes the
// handshake and `hello`, then pauses its socket so the kernel buffers fill and the server sees
// backpressure. The server must not queue without bound: it closes the socket once its bounded
// per-connection queue is full. A device built with the SDK checks that frames batched within one
// event-loop turn (handed to the socket in one corked write) all arrive, in order.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { type ChatInstance, connectDevice, startChat } from "./helpers";

let ctx: TestContext;
let chat: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  chat = await startChat(ctx, { env: { DEVICE_SEND_BUFFER_BYTES: String(256 * 1024) } });
});
afterAll(() => ctx.close());

/** A masked text frame, as a client must send it (RFC 6455 §5.3). */
function maskedFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const length = payload.length;
  const header =
    length < 126 ? Buffer.from([0x81, 0x80 | length]) : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]!));
  return Buffer.concat([header, mask, masked]);
}

async function stalledDevice(port: number, token: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => {});
  let received = "";
  const welcomed = new Promise<void>((resolve) => {
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (received.includes("welcome")) resolve();
    });
  });
  socket.write(
    "GET /api/v1/ws/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  socket.write(maskedFrame(JSON.stringify({ type: "hello", token, device_id: "slow", tools: [], protocol: 1 })));
  await welcomed;
  socket.pause();
  return { socket, closed };
}

test("a device that stops reading is disconnected once its bounded queue is full", async () => {
  const userId = `user-${crypto.randomUUID()}`;
  const device = await stalledDevice(chat.port, await ctx.token(userId));
  expect(chat.gateway.connectionCount()).toBe(1);
  const chunk = "x".repeat(32 * 1024);
  let pushed = 0;
  // Far more than kernel buffers and the 256 KiB queue can hold; stops as soon as the server gives up.
  while (chat.gateway.connectionCount() > 0 && pushed < 4000) {
    await chat.gateway.push.push(userId, { type: "chat_chunk", request_id: "r", chat_id: "c", seq: pushed, chunk });
    pushed += 1;
  }
  expect(chat.gateway.connectionCount()).toBe(0);
  expect(pushed).toBeLessThan(4000);
  const metrics = await chat.platform.metrics.registry.metrics();
  expect(metrics).toContain('device_frames_rejected_total{reason="send_buffer_full"} 1');
  expect(await chat.gateway.rpc.isOnline(userId)).toBe(false);
  device.socket.resume();
  await device.closed;
  expect(
    await eventually(
      () => chat.gateway.connectionCount(),
      (count) => count === 0,
    ),
  ).toBe(0);
});

test("a burst within one turn, past the high-water mark, reaches a reading device whole and in order", async () => {
  const userId = `user-${crypto.randomUUID()}`;
  const device = await connectDevice(ctx, { url: chat.wsUrl, userId });
  const seen: number[] = [];
  device.on("chat_chunk", (frame) => seen.push(frame.seq));
  const chunk = "y".repeat(1024);
  // 150 KiB in one turn: over the 64 KiB high-water mark, under the 256 KiB queue bound.
  const pushes = Array.from({ length: 150 }, (_, seq) =>
    chat.gateway.push.push(userId, { type: "chat_chunk", request_id: "r", chat_id: "c", seq, chunk }),
  );
  expect(await Promise.all(pushes)).toEqual(Array(150).fill(1));
  await eventually(
    () => seen.length,
    (count) => count === 150,
  );
  expect(seen).toEqual(Array.from({ length: 150 }, (_, seq) => seq));
  expect(device.status).toBe("open");
});
