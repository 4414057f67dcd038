// Cross-instance device tool call round trip: caller on node B, device on node A (another process),
// the device answering at once. Adiuva's device RPC against Socket.IO 4 with @socket.io/redis-adapter
// (`serverSideEmitWithAck` from B, then `emitWithAck` to the device on A), on the same Redis, in
// the same run. Also Socket.IO's bare `serverSideEmitWithAck` (no device hop), the figure usually
// quoted for it. Also the CPU time each process spends per call under load (caller, node A).
// Usage: bun bench/device-rpc/run.ts [sequential calls] [throughput calls] [adiuva-first|peer-first]
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { createDeviceRpcClient } from "../../src/shared/device-rpc/client";
import { deleteKeysWithPrefix, randomSuffix, signTestToken, testKeys } from "../../src/shared/testing";
import { countCommands, measure, type Result } from "./measure";
import { benchPlatform, REDIS_URL, readLine } from "./shared";

const SEQUENTIAL = Number(process.argv[2] ?? 5000);
const TOTAL = Number(process.argv[3] ?? 60_000);
const IN_FLIGHT = 2000;
const ORDER = process.argv[4] === "peer-first" ? "peer-first" : "adiuva-first";
const WARMUP = 500;

const WORKLOAD = { sequential: SEQUENTIAL, total: TOTAL, inFlight: IN_FLIGHT, warmup: WARMUP };
const counter = (redis: Redis) => async () => countCommands(await redis.info("commandstats"));

async function startNodeA(system: string, keyPrefix: string, env: Record<string, string>) {
  const child = Bun.spawn(["bun", `${import.meta.dir}/node-a.ts`, system, keyPrefix], {
    env: { ...process.env, REDIS_URL, ...env },
    stdout: "pipe",
    stderr: "inherit",
  });
  process.on("exit", () => child.kill());
  await readLine(child.stdout);
  return child;
}

const keys = await testKeys();
const userId = `bench-${randomSuffix()}`;
const env = { BENCH_PUBLIC_PEM: keys.publicPem, BENCH_TOKEN: await signTestToken(userId, "pro"), BENCH_USER: userId };
const admin = new Redis(REDIS_URL);
const results: Record<string, Result> = {};

async function runAdiuva(): Promise<void> {
  const keyPrefix = `bench:${randomSuffix()}`;
  const nodeA = await startNodeA("adiuva", keyPrefix, env);
  const platform = benchPlatform({ keyPrefix, publicPem: keys.publicPem, service: "agent" });
  const rpc = createDeviceRpcClient(platform);
  await rpc.start();
  const call = () => rpc.call({ userId, name: "task_list", args: { n: 1 } });
  results.adiuva = await measure("adiuva", call, nodeA.pid, WORKLOAD, counter(admin));
  await rpc.stop();
  nodeA.kill();
  await nodeA.exited;
  await deleteKeysWithPrefix(keyPrefix);
}

async function runSocketIo(): Promise<void> {
  const keyPrefix = `bench:${randomSuffix()}`;
  const nodeA = await startNodeA("socketio", keyPrefix, env);
  const pub = new Redis(REDIS_URL);
  const sub = pub.duplicate();
  const io = new Server();
  io.adapter(createAdapter(pub, sub, { key: `${keyPrefix}:sio` }));
  // Wait until node A is seen (serverSideEmitWithAck counts servers by NUMSUB).
  while ((await io.serverSideEmitWithAck("ping_bare", 0).catch(() => [])).length === 0) await Bun.sleep(50);
  results["socket.io (device hop)"] = await measure(
    "socket.io (device hop)",
    () => io.serverSideEmitWithAck("tool_call", { userId, name: "task_list", args: { n: 1 } }),
    nodeA.pid,
    WORKLOAD,
    counter(admin),
  );
  results["socket.io (bare serverSideEmitWithAck)"] = await measure(
    "socket.io (bare)",
    () => io.serverSideEmitWithAck("ping_bare", { n: 1 }),
    nodeA.pid,
    WORKLOAD,
    counter(admin),
  );
  // No io.close(): this Server was never attached to an HTTP server (close() would throw on its
  // missing engine); dropping the adapter's Redis connections is all there is to release.
  pub.disconnect();
  sub.disconnect();
  nodeA.kill();
  await nodeA.exited;
}

// Whoever runs second may find the machine warmer or busier: alternate `peer-first` across runs.
if (ORDER === "peer-first") {
  await runSocketIo();
  await runAdiuva();
} else {
  await runAdiuva();
  await runSocketIo();
}
admin.disconnect();

const fmt = (n: number, digits = 3) => n.toFixed(digits);
console.log(
  `sequential ${SEQUENTIAL} calls; throughput ${TOTAL} calls with ${IN_FLIGHT} in flight; ${ORDER === "peer-first" ? "Socket.IO" : "adiuva"} ran first\n`,
);
console.log(
  "| system | p50 ms | p99 ms | calls/s | Redis cmds/call | Redis cmds/call, in flight | SUBSCRIBEs during run | CPU µs/call caller | CPU µs/call node A |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const [name, r] of Object.entries(results))
  console.log(
    `| ${name} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${Math.round(r.throughput)} | ${fmt(r.commandsPerCall, 2)} | ${fmt(r.commandsPerCallInFlight, 2)} | ${r.subscribes} | ${fmt(r.callerCpuUs, 1)} | ${fmt(r.ownerCpuUs, 1)} |`,
  );
const ours = results.adiuva!;
for (const peer of ["socket.io (device hop)", "socket.io (bare serverSideEmitWithAck)"]) {
  const other = results[peer]!;
  console.log(
    `\nvs ${peer}: p50 ${fmt(ours.p50 / other.p50, 2)}x (target <= 0.75), p99 ${fmt(ours.p99 / other.p99, 2)}x (target <= 0.5), throughput ${fmt(ours.throughput / other.throughput, 2)}x (target >= 2)`,
  );
}
process.exit(0);
