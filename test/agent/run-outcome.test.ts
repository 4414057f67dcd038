// What an operator sees of a run: its log lines (queued, started, ended with the outcome and the
// error code) and the `agent_runs_total` / `agent_run_duration_seconds` samples. One agent service
// on real PostgreSQL, Redis and BullMQ, logging into a captureLogger; the device is an in-memory
// DeviceRpc and the model an ai/test mock, as in runs.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createAgentService } from "../../src/agent";
import type { Metrics } from "../../src/shared/metrics";
import { captureLogger, createTestContext, type TestContext } from "../../src/shared/testing";
import { unlimited, waitForRun } from "./support/agents";
import { MEMORY_DEVICE_ID, type MemoryDevice, memoryDevice, mockModels } from "./support/fakes";
import { type Api, api } from "./support/http";

let ctx: TestContext;
let device: MemoryDevice;
let metrics: Metrics;
let base: string;
const capture = captureLogger();

beforeAll(async () => {
  ctx = await createTestContext();
  device = memoryDevice({ "/ok/a.md": "TASK: one", "/ok/b.md": "TASK: two" });
  const server = await ctx.start(
    [
      (platform) =>
        createAgentService(
          { ...platform, logger: capture.logger },
          { rpc: device.rpc, push: device.push, models: mockModels(), limiter: unlimited },
        ),
    ],
    { env: { AGENT_DEVICE_GRACE_MS: "300", AGENT_JOB_LOCK_MS: "2000", AGENT_STALLED_INTERVAL_MS: "500" } },
  );
  metrics = server.platform.metrics;
  base = server.url;
});
afterAll(() => ctx.close());

const user = async () => {
  const userId = `user-${crypto.randomUUID()}`;
  return { userId, call: api(base, await ctx.token(userId, "power")) };
};

const configure = async (call: Api, path: string) =>
  (await call("POST", "/configs", { type: "filesystem", config: { path } })).body.id as string;

const linesOf = (runId: string, msg: string) =>
  capture.lines.filter((line) => line.run_id === runId && line.msg === msg);

/** The value of one sample (`series` of `metric`, by outcome), 0 when absent. */
async function sample(metric: string, series: string, outcome: string): Promise<number> {
  const values = (await metrics.registry.getSingleMetric(metric)?.get())?.values ?? [];
  const found = values.find(
    (value) => ((value as { metricName?: string }).metricName ?? metric) === series && value.labels.outcome === outcome,
  );
  return found?.value ?? 0;
}

const counts = async (outcome: string) => ({
  runs: await sample("agent_runs_total", "agent_runs_total", outcome),
  durations: await sample("agent_run_duration_seconds", "agent_run_duration_seconds_count", outcome),
});

describe("the service's metrics", () => {
  test("every outcome is exported at zero before any run ends", async () => {
    const text = await metrics.registry.metrics();
    for (const outcome of ["succeeded", "completed_with_errors", "failed", "cancelled"]) {
      expect(text).toContain(`agent_runs_total{outcome="${outcome}"} 0`);
      expect(text).toContain(`agent_run_duration_seconds_count{outcome="${outcome}"} 0`);
    }
  });
});

describe("a run's log lines and metrics", () => {
  test("a run that succeeds logs queued, started and ended with its ids, and counts once as succeeded", async () => {
    const { userId, call } = await user();
    const before = await counts("succeeded");
    const configId = await configure(call, "/ok");
    const runId = (await call("POST", "/trigger", { config_id: configId })).body.run_id as string;
    expect((await waitForRun(call, runId)).status).toBe("succeeded");
    const ids = { run_id: runId, user_id: userId, device_id: MEMORY_DEVICE_ID, config_id: configId };
    expect(linesOf(runId, "agent run queued")).toEqual([expect.objectContaining({ level: 30, ...ids })]);
    expect(linesOf(runId, "agent run started")).toEqual([
      expect.objectContaining({ level: 30, ...ids, start: 1, attempt: 1 }),
    ]);
    expect(linesOf(runId, "agent run ended")).toEqual([
      expect.objectContaining({
        level: 30,
        ...ids,
        type: "filesystem",
        outcome: "succeeded",
        error_code: null,
        items: { total: 2, done: 2, failed: 0, skipped: 0 },
        ms: expect.any(Number),
      }),
    ]);
    expect(await counts("succeeded")).toEqual({ runs: before.runs + 1, durations: before.durations + 1 });
  });

  test("a run that fails logs its end as a warning with the error code, and counts as failed", async () => {
    const { userId, call } = await user();
    const before = await counts("failed");
    device.online = false;
    try {
      const configId = await configure(call, "/ok");
      const triggered = await call("POST", "/trigger", { config_id: configId, device_id: MEMORY_DEVICE_ID });
      const runId = triggered.body.run_id as string;
      expect((await waitForRun(call, runId)).status).toBe("failed");
      expect(linesOf(runId, "agent run ended")).toEqual([
        expect.objectContaining({
          level: 40,
          run_id: runId,
          user_id: userId,
          device_id: MEMORY_DEVICE_ID,
          outcome: "failed",
          error_code: "device_offline",
        }),
      ]);
    } finally {
      device.online = true;
    }
    expect(await counts("failed")).toEqual({ runs: before.runs + 1, durations: before.durations + 1 });
  });

  test("a cancelled run logs its end and counts as cancelled; cancelling it again is 409 run_finished", async () => {
    const { userId, call } = await user();
    const before = await counts("cancelled");
    device.delayMs = 100;
    try {
      const configId = await configure(call, "/ok");
      const runId = (await call("POST", "/trigger", { config_id: configId })).body.run_id as string;
      expect((await call("POST", `/runs/${runId}/cancel`)).status).toBe(202);
      expect((await waitForRun(call, runId)).status).toBe("cancelled");
      expect(linesOf(runId, "agent run ended")).toEqual([
        expect.objectContaining({ level: 30, run_id: runId, user_id: userId, outcome: "cancelled" }),
      ]);
      const again = await call("POST", `/runs/${runId}/cancel`);
      expect({ status: again.status, code: again.body.error.code }).toEqual({ status: 409, code: "run_finished" });
    } finally {
      device.delayMs = 0;
    }
    expect(await counts("cancelled")).toEqual({ runs: before.runs + 1, durations: before.durations + 1 });
  });

  test("cancelling a run that succeeded is 409 run_finished and leaves it succeeded", async () => {
    const { call } = await user();
    const configId = await configure(call, "/ok");
    const runId = (await call("POST", "/trigger", { config_id: configId })).body.run_id as string;
    expect((await waitForRun(call, runId)).status).toBe("succeeded");
    const cancelled = await call("POST", `/runs/${runId}/cancel`);
    expect({ status: cancelled.status, body: cancelled.body }).toEqual({
      status: 409,
      body: { error: { code: "run_finished", message: expect.any(String), request_id: expect.any(String) } },
    });
    expect((await call("GET", `/runs/${runId}`)).body).toMatchObject({ status: "succeeded", cancel_requested: false });
    expect(linesOf(runId, "agent run ended")).toHaveLength(1);
  });
});
