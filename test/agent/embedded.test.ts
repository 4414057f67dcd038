// Embedded mode (no REDIS_URL): the in-process queue and bus carry runs and cancellations, with
// the real PostgreSQL; the device and model are the in-memory stand-ins.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createAgentService } from "../../src/agent";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { progressed, trigger, waitForRun } from "./support/agents";
import { sampleFiles } from "./support/device-files";
import { memoryDevice, mockModels } from "./support/fakes";
import { type Api, api } from "./support/http";

let ctx: TestContext;
let call: Api;
const device = memoryDevice(sampleFiles("/docs", 40).files);
const { expected } = sampleFiles("/docs", 40);

beforeAll(async () => {
  ctx = await createTestContext();
  const server = await ctx.start(
    [(platform) => createAgentService(platform, { rpc: device.rpc, push: device.push, models: mockModels() })],
    { redis: false },
  );
  expect(server.platform.redis).toBeUndefined();
  call = api(server.url, await ctx.token("ada", "power"));
});
afterAll(() => ctx.close());

test("a run completes on the in-process queue", async () => {
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  const run = await waitForRun(call, await trigger(call, body.id));
  expect(run).toMatchObject({ status: "succeeded", counts: expected });
});

test("a run can be cancelled in embedded mode", async () => {
  device.delayMs = 15;
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  const runId = await trigger(call, body.id);
  await progressed(call, runId, 2);
  await call("POST", `/runs/${runId}/cancel`);
  expect((await waitForRun(call, runId)).status).toBe("cancelled");
});
