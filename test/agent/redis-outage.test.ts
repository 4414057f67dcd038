// Agent runs through a Redis outage, as in an operator's failure drill: Redis goes away for 2 s or
// 10 s while a run has device calls in flight, then comes back. Strategy: the real world of
// support/world.ts (a chat instance holding the SDK device's WebSocket, the fake OpenAI server, an
// agent replica reaching the device through Redis), with every Redis connection of the chat
// instance and the replica going through a TcpProxy in front of the real Redis, which the test
// cuts and restores. The device answers every call a little later, so answers arrive while Redis
// is down. Nothing of the run may be lost: every file is processed once Redis is back.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { TERMINAL_RUN_STATUSES } from "../../src/agent/model";
import { createTestContext, TcpProxy, type TestContext, viaProxy } from "../../src/shared/testing";
import { progressed, trigger, waitForRun } from "./support/agents";
import { createStore, sampleFiles } from "./support/device-files";
import { api } from "./support/http";
import { connectStoreDevice, createWorld } from "./support/world";

let ctx: TestContext;
beforeEach(async () => {
  ctx = await createTestContext();
});
afterEach(() => ctx.close());

describe("a Redis outage during a run", () => {
  for (const outageMs of [2000, 10_000]) {
    test(`of ${outageMs / 1000} s loses no file: answers wait for Redis, timed-out files are retried`, async () => {
      const proxy = new TcpProxy("127.0.0.1", Number(new URL(ctx.redisUrl).port || 6379));
      proxy.start();
      ctx.defer(() => proxy.stop());
      const redis = { REDIS_URL: viaProxy(ctx.redisUrl, proxy.port) };
      // A deadline shorter than the long outage, so that calls in flight reach it; a job lock
      // longer than it, so that the run stays with its replica.
      const world = await createWorld(
        ctx,
        { ...redis, AGENT_DEVICE_CALL_MS: "5000", AGENT_DEVICE_GRACE_MS: "60000", AGENT_JOB_LOCK_MS: "30000" },
        { env: redis },
      );
      const agent = await world.startAgent();
      const { files, expected } = sampleFiles("/docs", 60);
      const store = createStore(files);
      const device = await connectStoreDevice(ctx, world, "drill", store);
      device.delayMs = 50;
      const call = api(agent.url, await ctx.token("drill", "power"));
      const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
      const runId = await trigger(call, body.id);
      await progressed(call, runId, 8);

      proxy.cut();
      await Bun.sleep(outageMs); // the outage itself, not a wait for a condition
      proxy.resume();

      const run = await waitForRun(call, runId, TERMINAL_RUN_STATUSES, 60_000);
      expect({ status: run.status, progress: run.progress, counts: run.counts }).toEqual({
        status: "succeeded",
        progress: { total: 60, done: 60, failed: 0, skipped: 0 },
        counts: expected,
      });
      expect({
        tasks: store.tasks.length,
        projects: store.projects.length,
        notes: store.notes.length,
        events: store.events.length,
      }).toEqual(expected);
    }, 90_000);
  }
});
