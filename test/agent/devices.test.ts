// A run belongs to one device. Strategy: the real device path (SDK clients on a real chat instance,
// device RPC through Redis, presence leases) with two devices of one user: a laptop holding the
// files and a desktop that holds none, so any call of the run reaching the desktop shows up as a
// "no such file" failure and in the desktop's call counts. The model is the fake OpenAI server.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { progressed, unlimited, waitForRun } from "./support/agents";
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

const { files, expected } = sampleFiles("/docs", 100);

async function user(name: string, graceMs = 1500) {
  const agent = await world.startAgent({ AGENT_DEVICE_GRACE_MS: String(graceMs) }, { limiter: unlimited });
  const call = api(agent.url, await ctx.token(name, "power"));
  const laptop = createStore(files);
  const desktop = createStore();
  const config = async (body: Record<string, unknown> = {}) =>
    (await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" }, ...body })).body.id as string;
  return { call, laptop, desktop, config };
}

const counts = (store: ReturnType<typeof createStore>) => ({
  tasks: store.tasks.length,
  projects: store.projects.length,
  notes: store.notes.length,
  events: store.events.length,
});

describe("a run is bound to one device", () => {
  test("a second device connecting mid-run gets none of its calls; the run finishes on its own device", async () => {
    const { call, laptop, desktop, config } = await user("two-devices");
    const first = await connectStoreDevice(ctx, world, "two-devices", laptop, "laptop");
    first.delayMs = 10;
    const triggered = await call("POST", "/trigger", { config_id: await config() });
    expect(triggered.body).toEqual({ run_id: expect.any(String), status: "queued", device_id: "laptop" });
    const runId = triggered.body.run_id;
    await progressed(call, runId, 5);
    await connectStoreDevice(ctx, world, "two-devices", desktop, "desktop");
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({
      status: "succeeded",
      device_id: "laptop",
      error: null,
      progress: { total: 100, done: 100, failed: 0 },
    });
    expect(counts(laptop)).toEqual(expected);
    expect([...desktop.calls.keys()]).toEqual([]);
  }, 90_000);

  test("with two devices connected a trigger must name one (409 device_ambiguous); a named or configured one is used", async () => {
    const { call, laptop, desktop, config } = await user("choose");
    await connectStoreDevice(ctx, world, "choose", laptop, "laptop");
    await connectStoreDevice(ctx, world, "choose", desktop, "desktop");
    const configId = await config();
    const ambiguous = await call("POST", "/trigger", { config_id: configId });
    expect({ status: ambiguous.status, code: ambiguous.body.error.code }).toEqual({
      status: 409,
      code: "device_ambiguous",
    });
    const named = await call("POST", "/trigger", { config_id: configId, device_id: "desktop" });
    expect({ status: named.status, device: named.body.device_id }).toEqual({ status: 202, device: "desktop" });
    const configured = await config({ device_id: "laptop" });
    expect((await call("GET", `/configs/${configured}`)).body.device_id).toBe("laptop");
    const byConfig = await call("POST", "/trigger", { config_id: configured });
    expect({ status: byConfig.status, device: byConfig.body.device_id }).toEqual({ status: 202, device: "laptop" });
    const [desktopRun, laptopRun] = await Promise.all([
      waitForRun(call, named.body.run_id, undefined, 60_000),
      waitForRun(call, byConfig.body.run_id, undefined, 60_000),
    ]);
    // The desktop has no /docs: its run found nothing; the laptop's found every file.
    expect(desktopRun).toMatchObject({ status: "succeeded", device_id: "desktop", progress: { total: 0 } });
    expect(laptopRun).toMatchObject({ status: "succeeded", device_id: "laptop", progress: { total: 100, done: 100 } });
    expect(desktop.calls.get("fs_read_file")).toBeUndefined();
  }, 90_000);

  test("its device going offline pauses the run even with another device online, which never takes over", async () => {
    const { call, laptop, desktop, config } = await user("offline");
    const first = await connectStoreDevice(ctx, world, "offline", laptop, "laptop");
    first.delayMs = 10;
    await connectStoreDevice(ctx, world, "offline", desktop, "desktop");
    const triggered = await call("POST", "/trigger", { config_id: await config(), device_id: "laptop" });
    const runId = triggered.body.run_id;
    await progressed(call, runId, 5);
    first.client.close();
    const paused = await waitForRun(call, runId, ["paused", "failed"]);
    expect(paused).toMatchObject({ status: "paused", error: { code: "device_offline" } });
    const run = await waitForRun(call, runId);
    expect(run).toMatchObject({
      status: "failed",
      error: { code: "device_offline", message: expect.stringContaining("did not come back") },
      progress: { failed: 0 },
    });
    expect([...desktop.calls.keys()]).toEqual([]);
  }, 30_000);

  test("its device coming back within the grace period resumes the run there", async () => {
    const { call, laptop, config } = await user("back", 20_000);
    const first = await connectStoreDevice(ctx, world, "back", laptop, "laptop");
    first.delayMs = 10;
    const runId = (await call("POST", "/trigger", { config_id: await config() })).body.run_id;
    await progressed(call, runId, 5);
    first.client.close();
    await waitForRun(call, runId, ["paused"]);
    await connectStoreDevice(ctx, world, "back", laptop, "laptop");
    const run = await waitForRun(call, runId, undefined, 60_000);
    expect(run).toMatchObject({ status: "succeeded", progress: { done: 100, failed: 0 } });
    expect(counts(laptop)).toEqual(expected);
  }, 90_000);
});
