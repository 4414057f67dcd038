// The device RPC on the Redis topologies, in one run: one Redis node against a 3-shard Redis
// Cluster (3 masters + 3 replicas started here from redis-server, sharded pub/sub), and on one
// node against its physical floor: a bare echo of a call's text over two PUBLISHes (caller ->
// inbox -> reply, no WebSocket hop) with the same client. Caller in this process, node A (the
// device's instance, with the device answering at once in its process) in another, as in run.ts.
// Usage: bun bench/device-rpc/topologies.ts [sequential calls] [throughput calls] [rounds]
import { createDeviceRpcClient } from "../../src/shared/device-rpc/client";
import { silentLogger } from "../../src/shared/logger";
import { masterNodes, openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, randomSuffix, signTestToken, testKeys } from "../../src/shared/testing";
import { startRedisCluster } from "../../src/shared/testing/redis-servers";
import { type FloorClient, floorClient } from "./floor-client";
import { type CommandCounter, countCommands, measure, type Result } from "./measure";
import { benchPlatform, REDIS_URL, readLine } from "./shared";

const WORKLOAD = {
  sequential: Number(process.argv[2] ?? 3000),
  total: Number(process.argv[3] ?? 60_000),
  inFlight: 2000,
  warmup: 500,
};
const ROUNDS = Number(process.argv[4] ?? 3);

const keys = await testKeys();
const userId = `bench-${randomSuffix()}`;
const auth = { BENCH_PUBLIC_PEM: keys.publicPem, BENCH_TOKEN: await signTestToken(userId, "pro"), BENCH_USER: userId };
const cluster = await startRedisCluster();
process.on("exit", () => void cluster.stop());
const single = { REDIS_URL };
const sharded = { REDIS_CLUSTER_NODES: cluster.env.REDIS_CLUSTER_NODES };

/** The process environment with exactly one Redis topology in it. */
function envWith(redis: Record<string, string>): Record<string, string | undefined> {
  const { REDIS_URL: _url, REDIS_CLUSTER_NODES: _nodes, ...rest } = process.env;
  return { ...rest, ...auth, ...redis };
}

async function spawnReady(args: string[], redis: Record<string, string>) {
  const child = Bun.spawn(["bun", ...args], { env: envWith(redis), stdout: "pipe", stderr: "inherit" });
  process.on("exit", () => child.kill());
  await readLine(child.stdout);
  return child;
}

/** INFO commandstats summed over every master of the topology. */
function counterFor(redis: Record<string, string>): { counter: CommandCounter; close(): void } {
  const topology = redis.REDIS_CLUSTER_NODES
    ? { kind: "cluster" as const, nodes: cluster.nodes, credentials: {} }
    : { kind: "single" as const, url: REDIS_URL };
  const admin = openRedis({ topology, logger: silentLogger(), name: "bench-admin" });
  return {
    async counter() {
      await admin.ping();
      const counts = await Promise.all(
        masterNodes(admin).map(async (node) => countCommands(await node.info("commandstats"))),
      );
      return counts.reduce((sum, next) => ({
        total: sum.total + next.total,
        subscribes: sum.subscribes + next.subscribes,
      }));
    },
    close: () => admin.disconnect(),
  };
}

async function adiuva(name: string, redis: Record<string, string>): Promise<Result> {
  const keyPrefix = `bench:${randomSuffix()}`;
  const nodeA = await spawnReady([`${import.meta.dir}/node-a.ts`, "adiuva", keyPrefix], redis);
  const platform = benchPlatform({ keyPrefix, publicPem: keys.publicPem, service: "agent", redis });
  const rpc = createDeviceRpcClient(platform);
  await rpc.start();
  const stats = counterFor(redis);
  const call = () => rpc.call({ userId, name: "task_list", args: { n: 1 } });
  const result = await measure(name, call, nodeA.pid, WORKLOAD, stats.counter);
  await rpc.stop();
  stats.close();
  nodeA.kill();
  await nodeA.exited;
  return result;
}

/**
 * The floor: the text of a real call envelope out and back, matched by id, nothing else done.
 * `batched`: a turn's calls leave as one JSON array, as the device RPC's inbox sender sends them,
 * and come back as the same array (echo-node.ts sends back what it receives).
 */
async function echoFloor(kind: "bun" | "ioredis" | "hop" | "batched"): Promise<Result> {
  const prefix = `bench:${randomSuffix()}`;
  const nodeA = await spawnReady([`${import.meta.dir}/echo-node.ts`, prefix, kind], single);
  const client = await floorClient(kind === "ioredis" ? "ioredis" : "bun");
  const lane = kind === "batched" ? batching(client) : client;
  const pending = new Map<string, () => void>();
  const settle = ({ id }: { id: string }) => {
    pending.get(id)?.();
    pending.delete(id);
  };
  await lane.subscribe(`${prefix}:reply`, (message) => {
    const value = JSON.parse(message) as { id: string } | Array<{ id: string }>;
    if (Array.isArray(value)) value.forEach(settle);
    else settle(value);
  });
  let next = 0;
  const call = () => {
    next += 1;
    const id = String(next);
    const text = JSON.stringify({
      t: "call",
      id,
      from: "caller",
      user: userId,
      name: "task_list",
      args: { n: 1 },
      deadline_ms: 30_000,
      origin: "server",
      ts: Date.now(),
    });
    const { promise, resolve } = Promise.withResolvers<void>();
    pending.set(id, resolve);
    lane.publish(`${prefix}:inbox`, text);
    return promise;
  };
  const stats = counterFor(single);
  const result = await measure(`echo floor (${kind})`, call, nodeA.pid, WORKLOAD, stats.counter);
  stats.close();
  client.close();
  nodeA.kill();
  await nodeA.exited;
  return result;
}

/** Publishes a turn's messages for a channel as one JSON array (a lone one as it is). */
function batching(client: FloorClient): FloorClient {
  const queued = new Map<string, string[]>();
  const flush = () => {
    for (const [channel, texts] of queued)
      client.publish(channel, texts.length === 1 ? texts[0]! : `[${texts.join(",")}]`).catch(() => {});
    queued.clear();
  };
  return {
    ...client,
    publish(channel, message) {
      if (queued.size === 0) setImmediate(flush);
      const texts = queued.get(channel);
      if (texts) texts.push(message);
      else queued.set(channel, [message]);
      return Promise.resolve();
    },
  };
}

const systems: Array<[string, () => Promise<Result>]> = [
  ["adiuva, one Redis node", () => adiuva("adiuva single", single)],
  ["adiuva, 3-shard Redis Cluster", () => adiuva("adiuva cluster", sharded)],
  ["bare echo floor, one node (Bun client)", () => echoFloor("bun")],
  ["bare echo floor, one node (ioredis)", () => echoFloor("ioredis")],
  ["echo floor with the WebSocket hop, one node (Bun client)", () => echoFloor("hop")],
  ["bare echo floor, batched per turn, one node (Bun client)", () => echoFloor("batched")],
];
const runs: Array<Record<string, Result>> = [];
for (let round = 0; round < ROUNDS; round++) {
  // Whoever runs later may find the machine warmer or busier: rotate the order round by round.
  const order = systems.map((_, i) => systems[(i + round) % systems.length]!);
  const results: Record<string, Result> = {};
  for (const [name, run] of order) results[name] = await run();
  runs.push(results);
}
await cluster.stop();
await deleteKeysWithPrefix("bench");
const fmt = (n: number, digits = 3) => n.toFixed(digits);
console.log(
  `sequential ${WORKLOAD.sequential} calls; throughput ${WORKLOAD.total} calls with ${WORKLOAD.inFlight} in flight; ${ROUNDS} rounds, order rotated\n`,
);
runs.forEach((results, round) => {
  console.log(`round ${round + 1}\n`);
  console.log(
    "| system | p50 ms | p99 ms | calls/s | Redis cmds/call | Redis cmds/call, in flight | CPU µs/call caller | CPU µs/call node A |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `| ${name} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${Math.round(r.throughput)} | ${fmt(r.commandsPerCall, 2)} | ${fmt(r.commandsPerCallInFlight, 2)} | ${fmt(r.callerCpuUs, 1)} | ${fmt(r.ownerCpuUs, 1)} |`,
    );
  }
  const one = results["adiuva, one Redis node"]!;
  const sharded = results["adiuva, 3-shard Redis Cluster"]!;
  const floor = results["bare echo floor, one node (Bun client)"]!;
  const ioredisFloor = results["bare echo floor, one node (ioredis)"]!;
  const hopFloor = results["echo floor with the WebSocket hop, one node (Bun client)"]!;
  const batchedFloor = results["bare echo floor, batched per turn, one node (Bun client)"]!;
  console.log(
    `\ncluster vs one node: throughput ${fmt(sharded.throughput / one.throughput, 2)}x (target >= 0.8), p50 ${fmt(sharded.p50 / one.p50, 2)}x; one node vs floor: throughput ${fmt(one.throughput / floor.throughput, 2)}x (target >= 0.7); floor with the hop vs floor: ${fmt(hopFloor.throughput / floor.throughput, 2)}x; one node vs floor with the hop: ${fmt(one.throughput / hopFloor.throughput, 2)}x; one node vs batched floor: ${fmt(one.throughput / batchedFloor.throughput, 2)}x; floor ioredis vs Bun's client: throughput ${fmt(ioredisFloor.throughput / floor.throughput, 2)}x, p99 ${fmt(ioredisFloor.p99 / floor.p99, 2)}x\n`,
  );
});
process.exit(0);
