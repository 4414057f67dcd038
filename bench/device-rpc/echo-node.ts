// The physical floor of a cross-instance call on one Redis node: what answers a call here does
// nothing but send the same text back: caller -> PUBLISH inbox -> this process -> PUBLISH reply ->
// caller. With Bun's RedisClient (the client the device RPC's lane uses on one node) or ioredis
// (the lane's client on Sentinel and Cluster), to tell which client is faster on one node.
// `hop` adds what no device call can avoid: the text goes out on a WebSocket (Bun.serve) to a
// device (Bun's WebSocket client, in this process as in node-a.ts) that sends it straight back;
// nothing is parsed on the way. `batched` is `bun` for a caller that sends a turn's calls as one
// array: what comes back is the same message.
// `bun echo-node.ts <key prefix> bun|ioredis|hop|batched`; prints {"ready":true} once subscribed.
import { floorClient } from "./floor-client";

const [prefix = "bench", client = "bun"] = process.argv.slice(2);
const lane = await floorClient(client === "ioredis" ? "ioredis" : "bun");
const reply = (message: string) => {
  lane.publish(`${prefix}:reply`, message).catch(() => {});
};
if (client === "hop") {
  const deviceSocket = await webSocketEcho(reply);
  await lane.subscribe(`${prefix}:inbox`, (message) => deviceSocket.send(message));
} else {
  await lane.subscribe(`${prefix}:inbox`, reply);
}
console.log(JSON.stringify({ ready: true }));
process.on("SIGTERM", () => process.exit(0));

/** A server socket whose device echoes every text frame; what comes back goes to `onAnswer`. */
async function webSocketEcho(onAnswer: (text: string) => void): Promise<{ send(text: string): void }> {
  const { promise: opened, resolve } = Promise.withResolvers<{ send(text: string): void }>();
  const server = Bun.serve({
    port: 0,
    fetch: (request, srv) => (srv.upgrade(request) ? undefined : new Response("upgrade", { status: 400 })),
    websocket: {
      open: (ws) => resolve(ws),
      message: (_ws, message) => onAnswer(String(message)),
    },
  });
  const device = new WebSocket(`ws://127.0.0.1:${server.port}`);
  device.onmessage = (event) => device.send(event.data as string);
  return opened;
}
