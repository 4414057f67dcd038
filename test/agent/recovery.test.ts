// Runs are never lost or stuck: a replica killed mid-run, Redis coming back empty, both at once.
// Strategy: the real device path (SDK client on a chat instance, device RPC through Redis), the fake
// OpenAI server, agent replicas wired the production way. The replica that dies runs in a
// subprocess (support/replica.ts) and gets SIGKILL, so nothing of it cleans up. A Redis restart is
// simulated as in test/chat/gateway/failover.test.ts: the agent replicas reach Redis through a
// TcpProxy, which is cut; the test's keys and the script cache are deleted (what a restart of a
// non-persistent Redis loses); the proxy is restored. Lock, stalled-check and reconcile timings
// are the production defaults where a test measures how long recovery takes.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import { agentRunLogs } from "../../src/agent/tables";
import type { Platform } from "../../src/shared/platform";
import {
  createTestContext,
  deleteKeysWithPrefix,
  eventually,
  TcpProxy,
  type TestContext,
  viaProxy,
} from "../../src/shared/testing";
import { progressed, trigger, unlimited, waitForRun } from "./support/agents";
import { createStore, sampleFiles } from "./support/device-files";
import { api } from "./support/http";
import { connectStoreDevice, createWorld, type World } from "./support/world";

let ctx: TestContext;
let world: World;
beforeEach(async () => {
  ctx = await createTestContext();
  world = await createWorld(ctx);
});
afterEach(() => ctx.close());

const { files, expected } = sampleFiles("/docs", 80);

const counts = (store: ReturnType<typeof createStore>) => ({
  tasks: store.tasks.length,
  projects: store.projects.length,
  notes: store.notes.length,
  events: store.events.length,
});

/** The world's agent settings with the production lock, stalled-check and reconcile timings. */
function productionTimings(more: Record<string, string> = {}): Record<string, string | undefined> {
  return { ...world.agentEnv, AGENT_JOB_LOCK_MS: undefined, AGENT_STALLED_INTERVAL_MS: undefined, ...more };
}

/** An agent replica in a subprocess, for SIGKILL, with the world's settings and `env` on top. */
async function spawnReplica(env: Record<string, string | undefined> = {}) {
  const base = await ctx.envFor({ service: "agent" });
  const child = Bun.spawn(["bun", `${import.meta.dir}/support/replica.ts`, ctx.keyPrefix], {
    env: {
      ...process.env,
      NODE_ENV: "test",
      LOG_LEVEL: "silent",
      DATABASE_URL: base.DATABASE_URL,
      REDIS_URL: base.REDIS_URL,
      JWT_PUBLIC_KEY_FILE: base.JWT_PUBLIC_KEY_FILE,
      ...world.agentEnv,
      ...env,
    },
    stdout: "ignore",
    stderr: "inherit",
  });
  ctx.defer(() => void child.kill("SIGKILL"));
  return child;
}

async function prepare(userId: string, agentUrl: string) {
  const store = createStore(files);
  const device = await connectStoreDevice(ctx, world, userId, store);
  const call = api(agentUrl, await ctx.token(userId, "power"));
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  return { store, device, call, configId: body.id as string };
}

/** Milliseconds until the run is started once more than `starts` times (by whichever replica). */
async function timeToRestart(platform: Platform, runId: string, starts: number, from: number, timeoutMs: number) {
  const row = await eventually(
    async () => (await platform.db.select().from(agentRunLogs).where(eq(agentRunLogs.id, runId)))[0],
    (run) => (run?.starts ?? 0) > starts,
    timeoutMs,
    50,
  );
  expect(row?.starts).toBeGreaterThan(starts);
  return Date.now() - from;
}

/** What a restart of a Redis without persistence does to the agent replicas behind `proxy`. */
async function restartRedisEmpty(proxy: TcpProxy) {
  proxy.cut();
  const admin = new Redis(ctx.redisUrl);
  await deleteKeysWithPrefix(ctx.keyPrefix);
  await admin.script("FLUSH");
  admin.disconnect();
  proxy.resume();
}

function redisProxy() {
  const proxy = new TcpProxy("127.0.0.1", Number(new URL(ctx.redisUrl).port || 6379));
  proxy.start();
  ctx.defer(() => proxy.stop());
  return proxy;
}

const startsOf = async (platform: Platform, runId: string) =>
  (await platform.db.select().from(agentRunLogs).where(eq(agentRunLogs.id, runId)))[0]?.starts ?? 0;

describe("a replica killed mid-run", () => {
  test("another replica takes its run over within 15 s with the default timings, without duplicates", async () => {
    const front = await world.startAgent({ AGENT_WORKER: "false" }, { limiter: unlimited });
    const { store, device, call, configId } = await prepare("takeover", front.url);
    device.delayMs = 10;
    const doomed = await spawnReplica(productionTimings());
    const runId = await trigger(call, configId);
    await progressed(call, runId, 10);
    // The survivor is up before the crash, as the second replica of a deployment is.
    await world.startAgent(productionTimings());
    const starts = await startsOf(front.platform, runId);
    doomed.kill("SIGKILL");
    const killedAt = Date.now();
    await doomed.exited;
    const takeoverMs = await timeToRestart(front.platform, runId, starts, killedAt, 20_000);
    console.info(`takeover after SIGKILL: ${takeoverMs} ms`);
    expect(takeoverMs).toBeLessThan(15_000);
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 80, failed: 0 } });
    expect(counts(store)).toEqual(expected);
  }, 90_000);
});

describe("Redis coming back empty", () => {
  test("queued runs get their jobs back when a replica starts; cancelling one without a job cancels it", async () => {
    const proxy = redisProxy();
    const viaRedisProxy = { REDIS_URL: viaProxy(ctx.redisUrl, proxy.port) };
    const front = await world.startAgent({ AGENT_WORKER: "false", ...viaRedisProxy }, { limiter: unlimited });
    const { store, call, configId } = await prepare("queued", front.url);
    const kept = await trigger(call, configId);
    const dropped = await trigger(call, configId);
    await restartRedisEmpty(proxy);

    // While the replica reconnects the request is only recorded; once it reaches Redis and finds
    // no job, the run is cancelled on the spot.
    const cancelled = await eventually(
      () => call("POST", `/runs/${dropped}/cancel`),
      (response) => response.status !== 202 || response.body.status !== "queued",
      10_000,
      100,
    );
    expect({ status: cancelled.status, run: cancelled.body.status }).toEqual({ status: 202, run: "cancelled" });

    const startedAt = Date.now();
    await world.startAgent(viaRedisProxy);
    const recoveryMs = await timeToRestart(front.platform, kept, 0, startedAt, 20_000);
    console.info(`queued run restarted ${recoveryMs} ms after a replica started`);
    const run = await waitForRun(call, kept, undefined, 60_000);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 80, failed: 0 } });
    expect(counts(store)).toEqual(expected);
    expect((await call("GET", `/runs/${dropped}`)).body).toMatchObject({ status: "cancelled", progress: { done: 0 } });
  }, 90_000);

  test("a running run whose replica then dies is taken over by a replica that stayed up", async () => {
    const proxy = redisProxy();
    const viaRedisProxy = { REDIS_URL: viaProxy(ctx.redisUrl, proxy.port) };
    const front = await world.startAgent({ AGENT_WORKER: "false", ...viaRedisProxy }, { limiter: unlimited });
    const { store, device, call, configId } = await prepare("running", front.url);
    device.delayMs = 10;
    const doomed = await spawnReplica(viaRedisProxy);
    const runId = await trigger(call, configId);
    await progressed(call, runId, 10);
    const survivor = await world.startAgent(viaRedisProxy);
    const starts = await startsOf(front.platform, runId);

    await restartRedisEmpty(proxy);
    const backAt = Date.now();
    doomed.kill("SIGKILL");
    await doomed.exited;
    // Running, or paused while the device's presence lease (lost too) is being renewed.
    expect(["running", "paused"]).toContain((await call("GET", `/runs/${runId}`)).body.status);

    // Nobody holds the run now: no job in Redis, no replica working on it. The periodic
    // reconciliation (default interval) puts the job back for the survivor.
    const recoveryMs = await timeToRestart(survivor.platform, runId, starts, backAt, 25_000);
    console.info(`running run restarted ${recoveryMs} ms after Redis came back empty`);
    expect(recoveryMs).toBeLessThan(20_000);
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 80, failed: 0 } });
    expect(counts(store)).toEqual(expected);
  }, 90_000);
});
