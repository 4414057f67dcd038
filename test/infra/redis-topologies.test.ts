// The backend's Redis users on a real Redis Cluster (3 masters, 3 replicas) and a real Sentinel group
// (src/shared/testing/redis-servers.ts): every Redis adapter's contract test, then the end-to-end
// tests where chat, agent, auth and billing instances work together over Redis, each run in a
// `bun test` subprocess whose environment names that topology (REDIS_CLUSTER_NODES, or
// REDIS_SENTINELS + REDIS_SENTINEL_NAME; REDIS_URL removed), which the test context and
// openTestRedis follow. The topologies run one after the other: on a small machine, two suites at
// once starve each other's timers. Skipped, with its reason, where redis-server or redis-cli is not
// installed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { Redis } from "ioredis";
import {
  type HostPort,
  type RedisClusterHandle,
  type RedisSentinelHandle,
  redisBinariesAvailable,
  startRedisCluster,
  startRedisSentinel,
} from "../../src/shared/testing/redis-servers";

type Topology = "cluster" | "sentinel";

/** Every Redis adapter's contract test (the in-process adapter and the topology's, side by side). */
const CONTRACTS = [
  "test/shared/device-rpc-lane.contract.test.ts",
  "test/shared/presence.contract.test.ts",
  "test/shared/jobs/contract.test.ts",
  "test/auth/lockout.test.ts",
  "test/shared/bus.contract.test.ts",
  "test/shared/event-log.contract.test.ts",
  "test/shared/rate-limit.contract.test.ts",
  "test/chat/turn-log.contract.test.ts",
  "test/chat/quota.contract.test.ts",
  "test/shared/revocations.test.ts",
];

/**
 * Two chat instances calling each other's devices, resuming each other's turns and surviving each
 * other's SIGKILL; two agent replicas sharing runs and limits; auth, billing and chat passing a tier
 * change along. failover.test.ts's Redis outage tests cut a TcpProxy in front of REDIS_URL's one
 * node: they skip themselves on these topologies, its instance failures run.
 */
const END_TO_END = [
  "test/chat/gateway/rpc.test.ts",
  "test/chat/gateway/failover.test.ts",
  "test/chat/resume.test.ts",
  "test/chat/chat-rest.test.ts",
  "test/agent/e2e.test.ts",
  "test/agent/runner.test.ts",
  "test/e2e/tier-change.test.ts",
];

const available = redisBinariesAvailable();
const skipped = (topology: Topology) =>
  available[topology] ? "" : ` (skipped: ${available.reason ?? `no ${topology} binaries`})`;
for (const topology of ["cluster", "sentinel"] as const) {
  if (!available[topology]) console.log(`redis ${topology} runs${skipped(topology)}`);
}

let cluster: RedisClusterHandle | undefined;
let sentinel: RedisSentinelHandle | undefined;
const children = new Set<Subprocess>();

beforeAll(async () => {
  if (!available.cluster && !available.sentinel) return;
  const started = performance.now();
  [cluster, sentinel] = await Promise.all([
    available.cluster ? startRedisCluster() : undefined,
    available.sentinel ? startRedisSentinel() : undefined,
  ]);
  console.log(`cluster and sentinel started: ${Math.round(performance.now() - started)} ms`);
}, 60_000);

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all([cluster?.stop(), sentinel?.stop()]);
});

function topologyEnv(topology: Topology): Record<string, string> {
  if (topology === "cluster") return cluster!.env;
  return sentinel!.env;
}

/** The nodes that take the writes: a Cluster's masters, or the master Sentinel names. */
async function writableNodes(topology: Topology): Promise<HostPort[]> {
  return topology === "cluster" ? cluster!.masters() : [await sentinel!.master()];
}

/** Commands the nodes have served since they started (INFO stats), to see that the run used them. */
async function commandsServed(nodes: HostPort[]): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    const redis = new Redis({ host: node.host, port: node.port, lazyConnect: true, retryStrategy: () => null });
    redis.on("error", () => {});
    try {
      await redis.connect();
      total += Number(/total_commands_processed:(\d+)/.exec(await redis.info("stats"))?.[1] ?? 0);
    } finally {
      redis.disconnect();
    }
  }
  return total;
}

interface RunOutcome {
  code: number | null;
  passed: number;
  failed: number;
  failures: string[];
  tail: string;
}

/** `bun test <files>` with the topology's environment instead of REDIS_URL. */
async function runOn(topology: Topology, files: string[]): Promise<RunOutcome> {
  const env: Record<string, string | undefined> = { ...process.env, ...topologyEnv(topology) };
  for (const name of ["REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_NAME", "REDIS_CLUSTER_NODES"]) {
    if (!(name in topologyEnv(topology))) delete env[name];
  }
  // The per-test timeout `bun run test` gives every test file (scripts/test.ts).
  const child = Bun.spawn(["bun", "test", "--timeout=30000", ...files], { env, stdout: "pipe", stderr: "pipe" });
  children.add(child);
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  children.delete(child);
  const output = `${out}\n${err}`;
  const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(output)?.[1] ?? -1);
  // Each failure with what bun printed before it (its assertion, its stack), not only its name.
  const lines = output.split("\n");
  const failures = [
    ...new Set(
      lines.flatMap((line, index) =>
        line.startsWith("(fail) ") ? [[...lines.slice(Math.max(0, index - 30), index), line].join("\n")] : [],
      ),
    ),
  ];
  return { code, passed: count("pass"), failed: count("fail"), failures, tail: output.slice(-6000) };
}

/** Runs `files` on the topology and checks the run: no failure, passes, and traffic on the topology's own nodes. */
async function passesOn(topology: Topology, name: string, files: string[]): Promise<void> {
  const before = await commandsServed(await writableNodes(topology));
  const started = performance.now();
  const outcome = await runOn(topology, files);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const served = (await commandsServed(await writableNodes(topology))) - before;
  console.log(
    `${topology}: ${outcome.passed} pass, ${outcome.failed} fail in ${seconds} s, ${served} commands (${name})`,
  );

  const report = [
    `on ${topology}: exit code ${outcome.code}, ${outcome.passed} pass, ${outcome.failed} fail`,
    ...outcome.failures,
    "--- end of the output:",
    outcome.tail,
  ].join("\n");
  expect({ code: outcome.code, failed: outcome.failed }, report).toEqual({ code: 0, failed: 0 });
  expect(outcome.passed, report).toBeGreaterThan(files.length);
  // The tests ran on this topology, not on the one-node Redis every test run also has. Sentinels and
  // replicas send the master a few commands a second of their own; the tests, tens of thousands.
  expect(served, `${served} commands reached the ${topology}'s masters`).toBeGreaterThan(5000);
}

const runs: Array<{ name: string; files: string[]; timeoutMs: number }> = [
  { name: "every Redis adapter's contract test", files: CONTRACTS, timeoutMs: 150_000 },
  { name: "the end-to-end tests of instances working together over Redis", files: END_TO_END, timeoutMs: 240_000 },
];

for (const topology of ["cluster", "sentinel"] as const) {
  describe.skipIf(!available[topology])(`Redis ${topology}${skipped(topology)}`, () => {
    for (const { name, files, timeoutMs } of runs) {
      test(`${name} passes on it (${files.length} files)`, () => passesOn(topology, name, files), timeoutMs);
    }
  });
}
