// Idle device connections on one instance: server memory per connection with N authenticated
// devices (one user each, so each also holds a presence lease and a stream subscription), against
// Socket.IO 4 (websocket transport, one room per user) in the same run. Clients live in this
// process, servers in their own. Usage: bun bench/connections/run.ts [connections]
import { io as connectClient, type Socket } from "socket.io-client";
import { deleteKeysWithPrefix, randomSuffix, signTestToken, testKeys } from "../../src/shared/testing";
import { readLine } from "../device-rpc/shared";

const N = Number(process.argv[2] ?? 10_000);
const BATCH = 200;
const keys = await testKeys();
const tokens: string[] = [];
for (let i = 0; i < N; i++) tokens.push(await signTestToken(`idle-${i}`, "free", { expiresInS: 3600 }));

async function run(system: "adiuva" | "socketio") {
  const keyPrefix = `bench:${randomSuffix()}`;
  const child = Bun.spawn(["bun", `${import.meta.dir}/server.ts`, system, keyPrefix], {
    env: { ...process.env, BENCH_PUBLIC_PEM: keys.publicPem },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const stdout = child.stdout;
  const { port } = (await readLine(stdout)) as { port: number };
  const measure = async () => {
    child.stdin.write("measure\n");
    child.stdin.flush();
    return (await readLine(stdout)) as { rss: number; heapUsed: number };
  };
  const before = await measure();
  const open: Array<WebSocket | Socket> = [];
  for (let start = 0; start < N; start += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, N - start) }, (_, offset) => {
        const i = start + offset;
        if (system === "socketio") {
          const socket = connectClient(`http://127.0.0.1:${port}`, {
            transports: ["websocket"],
            auth: { userId: `idle-${i}` },
          });
          open.push(socket);
          return new Promise<void>((resolve) => socket.on("connect", () => resolve()));
        }
        const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws/device`);
        open.push(ws);
        return new Promise<void>((resolve, reject) => {
          ws.onopen = () =>
            ws.send(
              JSON.stringify({ type: "hello", token: tokens[i], device_id: "d", tools: ["task_list"], protocol: 1 }),
            );
          ws.onmessage = () => resolve();
          ws.onclose = (event) => reject(new Error(`closed ${event.code}`));
        });
      }),
    );
  }
  const after = await measure();
  for (const socket of open) socket.close();
  child.kill();
  await deleteKeysWithPrefix(keyPrefix);
  return {
    rssPerConnection: (after.rss - before.rss) / N,
    heapPerConnection: (after.heapUsed - before.heapUsed) / N,
  };
}

const results = { adiuva: await run("adiuva"), "socket.io": await run("socketio") };
console.log(`${N} idle authenticated connections on one instance\n`);
console.log("| system | RSS KB/conn | JS heap KB/conn | connections per GB (RSS) |");
console.log("|---|---|---|---|");
for (const [name, r] of Object.entries(results))
  console.log(
    `| ${name} | ${(r.rssPerConnection / 1024).toFixed(1)} | ${(r.heapPerConnection / 1024).toFixed(1)} | ${Math.round(2 ** 30 / r.rssPerConnection)} |`,
  );
process.exit(0);
