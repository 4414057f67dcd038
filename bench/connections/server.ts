// The server side of the idle-connections benchmark, alone in its process so its memory is its
// own. `bun server.ts adiuva|socketio <key prefix>`; prints {"port"}; each "measure" line on stdin
// answers with the process's memory after a full GC.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createChatService } from "../../src/chat";
import { startServer } from "../../src/shared/server";
import { benchPlatform } from "../device-rpc/shared";

const [system, keyPrefix = "bench"] = process.argv.slice(2);
let port: number;
if (system === "adiuva") {
  const platform = benchPlatform({ keyPrefix, publicPem: process.env.BENCH_PUBLIC_PEM! });
  port = (await startServer({ platform, modules: [await createChatService(platform)], port: 0 })).port;
} else {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"] });
  io.on("connection", (socket) => void socket.join(`user:${socket.handshake.auth.userId}`));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  port = (http.address() as { port: number }).port;
}
console.log(JSON.stringify({ port }));
for await (const line of console) {
  if (line.trim() !== "measure") continue;
  Bun.gc(true);
  await Bun.sleep(200);
  Bun.gc(true);
  const { rss, heapUsed } = process.memoryUsage();
  console.log(JSON.stringify({ rss, heapUsed }));
}
