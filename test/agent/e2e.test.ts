// Agent runs end to end: the device is the SDK's WebSocket client on a real chat instance, with an
// in-memory filesystem and planner answering the tool calls; the model is the fake OpenAI-compatible
// server (real provider code, deterministic answers from support/brain.ts); agent replicas reach the
// device through Redis exactly as in production. One replica runs as a subprocess so that it can be
// killed with SIGKILL mid-run.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { inArray } from "drizzle-orm";
import { agentRunLogs } from "../../src/agent/tables";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { progressed, trigger, waitForRun } from "./support/agents";
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

const counts = (store: ReturnType<typeof createStore>) => ({
  tasks: store.tasks.length,
  projects: store.projects.length,
  notes: store.notes.length,
  events: store.events.length,
});

async function prepare(userId: string, files: Record<string, string>, agentUrl: string) {
  const store = createStore(files);
  const device = await connectStoreDevice(ctx, world, userId, store);
  const call = api(agentUrl, await ctx.token(userId, "power"));
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  return { store, device, call, configId: body.id as string };
}

describe("agent runs through the device gateway", () => {
  test("a run over 200 files writes exactly the expected entities once; running it again writes none", async () => {
    const agent = await world.startAgent();
    const { files, expected } = sampleFiles("/docs", 200);
    const { store, device, call, configId } = await prepare("ada", files, agent.url);
    const runId = await trigger(call, configId);
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({
      status: "succeeded",
      progress: { total: 200, done: 200, failed: 0 },
      counts: expected,
    });
    expect(counts(store)).toEqual(expected);
    const frames = await eventually(
      () => device.events.filter((frame) => frame.run_id === runId),
      (seen) => seen.at(-1)?.event === "finished",
    );
    expect(frames.at(0)).toMatchObject({ type: "agent_event", event: "started" });
    expect(frames.at(-1)).toMatchObject({ event: "finished", status: "succeeded", counts: expected });

    const again = await waitForRun(call, await trigger(call, configId), undefined, 60_000);
    expect(again.status).toBe("succeeded");
    expect(counts(store)).toEqual(expected);
  }, 90_000);

  test("two agent replicas share several runs", async () => {
    const one = await world.startAgent({ AGENT_WORKER_CONCURRENCY: "1" });
    await world.startAgent({ AGENT_WORKER_CONCURRENCY: "1" });
    const { files, expected } = sampleFiles("/docs", 30);
    const { store, device, call, configId } = await prepare("bob", files, one.url);
    device.delayMs = 2;
    const runs = [await trigger(call, configId), await trigger(call, configId), await trigger(call, configId)];
    const done = await Promise.all(runs.map((runId) => waitForRun(call, runId, undefined, 60_000)));
    expect(done.map((run) => run.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(counts(store)).toEqual(expected);
    const workers = await one.platform.db
      .select({ instance: agentRunLogs.instanceId })
      .from(agentRunLogs)
      .where(inArray(agentRunLogs.id, runs));
    expect(new Set(workers.map((row) => row.instance)).size).toBe(2);
  }, 90_000);

  test("a replica killed mid-run leaves the run to another, which finishes it without duplicates", async () => {
    const front = await world.startAgent({ AGENT_WORKER: "false" });
    const { files, expected } = sampleFiles("/docs", 80);
    const { store, device, call, configId } = await prepare("carol", files, front.url);
    device.delayMs = 10;
    const env = await ctx.envFor({ service: "agent" });
    const doomed = Bun.spawn(["bun", `${import.meta.dir}/support/replica.ts`, ctx.keyPrefix], {
      env: {
        ...process.env,
        ...world.agentEnv,
        NODE_ENV: "test",
        LOG_LEVEL: "silent",
        DATABASE_URL: env.DATABASE_URL,
        // Behind a transaction pooler (test/infra/pgbouncer.test.ts), the replica uses it as the others do.
        DATABASE_POOL_MODE: env.DATABASE_POOL_MODE,
        ...(env.MIGRATION_DATABASE_URL && { MIGRATION_DATABASE_URL: env.MIGRATION_DATABASE_URL }),
        REDIS_URL: env.REDIS_URL,
        JWT_PUBLIC_KEY_FILE: env.JWT_PUBLIC_KEY_FILE,
      },
      stdout: "ignore",
      stderr: "inherit",
    });
    ctx.defer(() => void doomed.kill("SIGKILL"));
    const runId = await trigger(call, configId);
    await progressed(call, runId, 10);
    doomed.kill("SIGKILL");
    await doomed.exited;
    const before = (await call("GET", `/runs/${runId}`)).body;
    expect(before.status).toBe("running");
    expect(before.progress.done).toBeLessThan(80);
    await world.startAgent();
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 80, failed: 0 }, counts: expected });
    expect(counts(store)).toEqual(expected);
    expect(run.log.some((entry: { message: string }) => entry.message.startsWith("run resumed"))).toBe(true);
  }, 90_000);

  test("cancel stops a run within seconds", async () => {
    const agent = await world.startAgent();
    const { files } = sampleFiles("/docs", 100);
    const { store, device, call, configId } = await prepare("dave", files, agent.url);
    device.delayMs = 20;
    const runId = await trigger(call, configId);
    await progressed(call, runId, 3);
    expect((await call("POST", `/runs/${runId}/cancel`)).status).toBe(202);
    const run = await waitForRun(call, runId, undefined, 5000);
    expect(run).toMatchObject({ status: "cancelled", error: { code: "cancelled" } });
    expect(run.progress.done).toBeLessThan(100);
    const written = counts(store);
    await Bun.sleep(300); // nothing may be written after the run says it stopped
    expect(counts(store)).toEqual(written);
  }, 30_000);

  test("the device disconnecting mid-run pauses the run, then fails it with a clear status", async () => {
    const agent = await world.startAgent({ AGENT_DEVICE_GRACE_MS: "1500" });
    const { files } = sampleFiles("/docs", 100);
    const { device, call, configId } = await prepare("erin", files, agent.url);
    device.delayMs = 10;
    const runId = await trigger(call, configId);
    await progressed(call, runId, 5);
    device.client.close();
    const paused = await waitForRun(call, runId, ["paused", "failed"]);
    expect(paused.status).toBe("paused");
    expect(paused.error.code).toBe("device_offline");
    const run = await waitForRun(call, runId);
    expect(run.status).toBe("failed");
    expect(run.error).toEqual({ code: "device_offline", message: expect.stringContaining("did not come back") });
    expect(run.progress.failed).toBe(0);
  }, 30_000);
});
