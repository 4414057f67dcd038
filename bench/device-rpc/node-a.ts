// Node A of the round-trip benchmark: holds the device's socket, with the device (answering at
// once) in the same process. `bun node-a.ts adiuva|socketio <key prefix>`; the public key, token
// and user come from the environment. Prints {"ready":true} once the device is connected.
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { io as connectClient } from "socket.io-client";
import { createChatService } from "../../src/chat";
import { DeviceClient } from "../../src/client";
import { startServer } from "../../src/shared/server";
import { benchPlatform, REDIS_URL } from "./shared";

const [system, keyPrefix = "bench"] = process.argv.slice(2);
const token = process.env.BENCH_TOKEN!;
const userId = process.env.BENCH_USER!;

if (system === "adiuva") {
  const platform = benchPlatform({ keyPrefix, publicPem: process.env.BENCH_PUBLIC_PEM! });
  const server = await startServer({ platform, modules: [await createChatService(platform)], port: 0 });
  const device = new DeviceClient({
    url: `ws://127.0.0.1:${server.port}/api/v1/ws/device`,
    token: () => token,
    deviceId: "bench-device",
    tools: { task_list: (args) => args },
  });
  await device.connect();
} else {
  const pub = new Redis(REDIS_URL);
  const sub = pub.duplicate();
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"] });
  io.adapter(createAdapter(pub, sub, { key: `${keyPrefix}:sio` }));
  io.on("connection", (socket) => {
    void socket.join(`user:${socket.handshake.auth.userId}`);
  });
  // The cross-node request: find the user's socket here, ask the device, answer the asking node.
  io.on("tool_call", async (payload: { userId: string; name: string; args: unknown }, ack: (r: unknown) => void) => {
    const [socket] = await io.in(`user:${payload.userId}`).local.fetchSockets();
    if (!socket) return ack({ ok: false, error: "device_offline" });
    ack(await socket.timeout(30_000).emitWithAck("tool_call", payload));
  });
  io.on("ping_bare", (payload: unknown, ack: (r: unknown) => void) => ack(payload));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as { port: number }).port;
  const device = connectClient(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { userId } });
  device.on("tool_call", (payload: { args: unknown }, ack: (r: unknown) => void) =>
    ack({ ok: true, result: payload.args }),
  );
  await new Promise<void>((resolve) => device.on("connect", () => resolve()));
}
console.log(JSON.stringify({ ready: true }));
// An orderly exit on the runner's kill, so `bun --cpu-prof` can write node A's profile.
process.on("SIGTERM", () => process.exit(0));
