// How runs behave under trouble, with two agent replicas on one PostgreSQL and Redis: cancel,
// the device going away (pause, resume, fail), no worker running, a replica stopping mid-run,
// and the run limits enforced exactly across replicas. The device is an in-memory DeviceRpc
// shared by the replicas (a slow one where a run must still be in flight), the model an ai/test mock.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { inArray } from "drizzle-orm";
import { agentRunLogs } from "../../src/agent/tables";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";
import { progressed, startAgent, trigger, waitForRun } from "./support/agents";
import { sampleFiles } from "./support/device-files";
import { MEMORY_DEVICE_ID, type MemoryDevice, memoryDevice } from "./support/fakes";
import { api } from "./support/http";

let ctx: TestContext;
const { files, expected } = sampleFiles("/docs", 60);

// A world per test: replicas of one test must not take the runs of another.
beforeEach(async () => {
  ctx = await createTestContext();
});
afterEach(() => ctx.close());

async function setup(user: string, device: MemoryDevice, env: Record<string, string> = {}, tier: Tier = "power") {
  const server = await startAgent(ctx, device, { AGENT_DEVICE_GRACE_MS: "400", ...env });
  const call = api(server.url, await ctx.token(user, tier));
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  return { server, call, configId: body.id as string };
}

describe("cancellation", () => {
  test("a running run stops within seconds and writes nothing more", async () => {
    const device = memoryDevice(files);
    device.delayMs = 15;
    const { call, configId } = await setup("cancel-running", device);
    const runId = await trigger(call, configId);
    await progressed(call, runId, 3);
    const cancelled = await call("POST", `/runs/${runId}/cancel`);
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.cancel_requested).toBe(true);
    const started = Date.now();
    const run = await waitForRun(call, runId, ["cancelled", "succeeded", "failed"], 5000);
    expect(run.status).toBe("cancelled");
    expect(Date.now() - started).toBeLessThan(3000);
    expect(run.progress.done).toBeLessThan(60);
    const writes = device.store.tasks.length;
    await Bun.sleep(200); // nothing may be written after the run says it stopped
    expect(device.store.tasks.length).toBe(writes);
    const again = await call("POST", `/runs/${runId}/cancel`);
    expect({ status: again.status, code: again.body.error.code }).toEqual({ status: 409, code: "run_finished" });
  });

  test("a run still in the queue is cancelled at once", async () => {
    const device = memoryDevice(files);
    const { call, configId } = await setup("cancel-queued", device, { AGENT_WORKER: "false" });
    const runId = await trigger(call, configId);
    const { status, body } = await call("POST", `/runs/${runId}/cancel`);
    expect(status).toBe(202);
    expect(body.status).toBe("cancelled");
  });
});

describe("the device going away", () => {
  test("a run pauses while the device is offline and resumes when it is back", async () => {
    const device = memoryDevice(files);
    device.delayMs = 5;
    const { call, configId } = await setup("offline-resume", device, { AGENT_DEVICE_GRACE_MS: "20000" });
    const runId = await trigger(call, configId);
    await progressed(call, runId, 5);
    device.online = false;
    const paused = await waitForRun(call, runId, ["paused"]);
    expect(paused.error).toEqual({ code: "device_offline", message: expect.stringContaining("paused") });
    device.online = true;
    const run = await waitForRun(call, runId);
    expect(run).toMatchObject({
      status: "succeeded",
      error: null,
      progress: { done: 60, failed: 0 },
      counts: expected,
    });
    expect(device.store.tasks).toHaveLength(expected.tasks);
  });

  test("a device that does not come back fails the run with a clear status", async () => {
    const device = memoryDevice(files);
    device.delayMs = 5;
    const { call, configId } = await setup("offline-fail", device);
    const runId = await trigger(call, configId);
    await progressed(call, runId, 5);
    device.online = false;
    const run = await waitForRun(call, runId);
    expect(run.status).toBe("failed");
    expect(run.error.code).toBe("device_offline");
    expect(run.error.message).toContain("did not come back");
    expect(run.progress.failed).toBe(0);
  });

  test("a named device offline from the start: the run waits for it, then fails without touching any file", async () => {
    const device = memoryDevice(files);
    device.online = false;
    const { call, configId } = await setup("offline-start", device);
    const triggered = await call("POST", "/trigger", { config_id: configId, device_id: MEMORY_DEVICE_ID });
    expect(triggered.status).toBe(202);
    const paused = await waitForRun(call, triggered.body.run_id, ["paused", "failed"]);
    expect(paused).toMatchObject({ status: "paused", error: { code: "device_offline" } });
    const run = await waitForRun(call, triggered.body.run_id);
    expect(run).toMatchObject({ status: "failed", error: { code: "device_offline" }, progress: { total: 0 } });
    expect(device.store.calls.size).toBe(0);
  });

  test("the configuration's device offline at trigger: the run waits for it like a named one, then fails", async () => {
    const device = memoryDevice(files);
    device.online = false;
    const { call } = await setup("offline-configured", device);
    const created = await call("POST", "/configs", {
      type: "filesystem",
      config: { path: "/docs" },
      device_id: MEMORY_DEVICE_ID,
    });
    const triggered = await call("POST", "/trigger", { config_id: created.body.id });
    expect({ status: triggered.status, device: triggered.body.device_id }).toEqual({
      status: 202,
      device: MEMORY_DEVICE_ID,
    });
    const paused = await waitForRun(call, triggered.body.run_id, ["paused", "failed"]);
    expect(paused).toMatchObject({ status: "paused", error: { code: "device_offline" } });
    const run = await waitForRun(call, triggered.body.run_id);
    expect(run).toMatchObject({ status: "failed", error: { code: "device_offline" } });
    expect(device.store.calls.size).toBe(0);
  });

  test("with no device connected and none named, a trigger is refused with 409 device_offline", async () => {
    const device = memoryDevice(files);
    device.online = false;
    const { call, configId } = await setup("offline-unnamed", device);
    const { status, body } = await call("POST", "/trigger", { config_id: configId });
    expect({ status, code: body.error.code }).toEqual({ status: 409, code: "device_offline" });
    expect((await call("GET", "/runs")).body.runs).toEqual([]);
  });
});

describe("replicas", () => {
  test("with no worker running a run waits in the queue, and runs when a worker starts", async () => {
    const device = memoryDevice(files);
    const { call, configId } = await setup("scale-zero", device, { AGENT_WORKER: "false" });
    const runId = await trigger(call, configId);
    await Bun.sleep(300); // nobody may pick it up
    expect((await call("GET", `/runs/${runId}`)).body.status).toBe("queued");
    await startAgent(ctx, device);
    const run = await waitForRun(call, runId);
    expect(run).toMatchObject({ status: "succeeded", counts: expected });
  });

  test("a replica stopping mid-run hands the run to another, which finishes it without duplicates", async () => {
    const device = memoryDevice(files);
    device.delayMs = 10;
    const first = await setup("handover", device);
    const runId = await trigger(first.call, first.configId);
    await progressed(first.call, runId, 5);
    const second = await startAgent(ctx, device);
    await first.server.stop();
    const run = await waitForRun(api(second.url, await ctx.token("handover", "power")), runId);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 60 }, counts: expected });
    expect(device.store.tasks).toHaveLength(expected.tasks);
    expect(device.store.projects).toHaveLength(expected.projects);
  });

  test("several runs are shared between two replicas", async () => {
    const device = memoryDevice(files);
    device.delayMs = 2;
    const one = await setup("sharing", device, { AGENT_WORKER_CONCURRENCY: "1" });
    await startAgent(ctx, device, { AGENT_WORKER_CONCURRENCY: "1" });
    const runs = [await trigger(one.call, one.configId), await trigger(one.call, one.configId)];
    const done = await Promise.all(runs.map((runId) => waitForRun(one.call, runId)));
    expect(done.map((run) => run.status)).toEqual(["succeeded", "succeeded"]);
    expect(device.store.tasks).toHaveLength(expected.tasks);
    const workers = await one.server.platform.db
      .select({ instance: agentRunLogs.instanceId })
      .from(agentRunLogs)
      .where(inArray(agentRunLogs.id, runs));
    expect(new Set(workers.map((row) => row.instance)).size).toBe(2);
  });
});

describe("run limits across two replicas", () => {
  test("concurrent triggers never exceed the tier's concurrent runs", async () => {
    const device = memoryDevice(files);
    device.delayMs = 50;
    const one = await setup("concurrency", device, {}, "pro");
    const other = await startAgent(ctx, device);
    const two = api(other.url, await ctx.token("concurrency", "pro"));
    const attempts = await Promise.all(
      Array.from({ length: 8 }, (_, n) => (n % 2 ? one.call : two)("POST", "/trigger", { config_id: one.configId })),
    );
    const accepted = attempts.filter((each) => each.status === 202);
    const refused = attempts.filter((each) => each.status === 429);
    expect(accepted).toHaveLength(2);
    expect(refused).toHaveLength(6);
    expect(refused[0]?.body.error.code).toBe("concurrent_run_limit");
    expect(refused[0]?.headers.get("retry-after")).toBe("30");
    for (const each of accepted) await one.call("POST", `/runs/${each.body.run_id}/cancel`);
  });

  test("the daily run quota is exact, with Retry-After until midnight UTC", async () => {
    const device = memoryDevice({ "/docs/a.md": "nothing" });
    const one = await setup("daily", device, {}, "free");
    const other = await startAgent(ctx, device);
    const two = api(other.url, await ctx.token("daily", "free"));
    let accepted = 0;
    // Free allows one run at a time and three a day: trigger, wait, repeat, from alternating replicas.
    for (let n = 0; n < 4; n++) {
      const response = await (n % 2 ? one.call : two)("POST", "/trigger", { config_id: one.configId });
      if (response.status !== 202) {
        expect(response.status).toBe(429);
        expect(response.body.error.code).toBe("run_limit_reached");
        const retryAfter = Number(response.headers.get("retry-after"));
        expect(retryAfter).toBeGreaterThan(0);
        expect(retryAfter).toBeLessThanOrEqual(86_400);
        expect(response.headers.get("ratelimit-policy")).toContain("q=3");
        continue;
      }
      accepted++;
      await waitForRun(one.call, response.body.run_id);
    }
    expect(accepted).toBe(3);
  });
});
