// Runs end to end inside the agent service: real HTTP, PostgreSQL, Redis and BullMQ; the device
// is an in-memory DeviceRpc with a small filesystem and the model an ai/test mock (the gateway
// and a fake OpenAI server are exercised in e2e.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeviceCallError } from "../../src/shared/device-rpc";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { startAgent, unlimited, waitForRun } from "./support/agents";
import { sampleFiles } from "./support/device-files";
import { MEMORY_DEVICE_ID, type MemoryDevice, memoryDevice } from "./support/fakes";
import { type Api, api, expectUnauthenticated } from "./support/http";

let ctx: TestContext;
let device: MemoryDevice;
let ada: Api;
let bob: Api;
let base: string;
const { files, expected } = sampleFiles("/docs", 200);

beforeAll(async () => {
  ctx = await createTestContext();
  device = memoryDevice({
    ...files,
    "/docs/broken.md": "UNREADABLE",
    "/docs/garbled.md": "GARBAGE TASK: never",
    "/docs/picture.md": "BINARY data",
    "/docs/skipped.png": "TASK: not listed, wrong extension",
  });
  // One user through the whole file, polling its runs: the per-minute budget is not what is tested here.
  const server = await startAgent(ctx, device, {}, { limiter: unlimited });
  base = server.url;
  ada = api(base, await ctx.token("ada", "power"));
  bob = api(base, await ctx.token("bob", "power"));
});
afterAll(() => ctx.close());

const configure = async (call: Api, type: string, config: Record<string, unknown>) => {
  const created = await call("POST", "/configs", { type, config });
  expect(created.status).toBe(201);
  return created.body.id as string;
};

describe("a filesystem run", () => {
  let configId: string;
  let runId: string;

  test("POST /trigger queues a run (202) on the one connected device, processes every file and writes each entity once", async () => {
    configId = await configure(ada, "filesystem", { path: "/docs" });
    const triggered = await ada("POST", "/trigger", { config_id: configId });
    expect(triggered.status).toBe(202);
    expect(triggered.body).toEqual({ run_id: expect.any(String), status: "queued", device_id: MEMORY_DEVICE_ID });
    runId = triggered.body.run_id;
    const run = await waitForRun(ada, runId);
    expect(run).toMatchObject({
      id: runId,
      config_id: configId,
      type: "filesystem",
      device_id: MEMORY_DEVICE_ID,
      // Two files failed: the run says so rather than "succeeded" (a skipped binary is no failure).
      status: "completed_with_errors",
      error: { code: "items_failed", message: expect.stringMatching(/^2 of 203 item\(s\) failed; most often/) },
      progress: { total: 203, done: 200, failed: 2, skipped: 1 },
      counts: expected,
    });
    const { store } = device;
    expect({
      tasks: store.tasks.length,
      projects: store.projects.length,
      notes: store.notes.length,
      events: store.events.length,
    }).toEqual(expected);
    const linked = store.tasks.find((task) => task.title === "plan launch 5");
    expect(linked?.project_id).toBe(store.projects.find((project) => project.name === "launch 5")?.id);
    expect(new Set(store.tasks.map((task) => task.idempotency_key)).size).toBe(store.tasks.length);
  });

  test("GET /runs/:id shows the log, including the one broken and one garbled file", async () => {
    const { status, body } = await ada("GET", `/runs/${runId}`);
    expect(status).toBe(200);
    const failures = body.log.filter((entry: { level: string }) => entry.level === "warn");
    expect(failures.map((entry: { item: string }) => entry.item).sort()).toEqual([
      "/docs/broken.md",
      "/docs/garbled.md",
    ]);
    expect(body.log.at(0).message).toBe("run started");
    expect(body.log.at(-1).message).toStartWith("run finished: 2 of 203 item(s) failed");
  });

  test("progress reached the device as agent_event frames", async () => {
    // The final frame is pushed after the run's row is written: wait for it rather than race it.
    const frames = await eventually(
      () => device.frames.filter((frame) => frame.run_id === runId),
      (seen) => seen.at(-1)?.event === "finished",
    );
    expect(frames.at(0)).toMatchObject({ type: "agent_event", event: "started" });
    expect(frames.at(-1)).toMatchObject({
      type: "agent_event",
      event: "finished",
      status: "completed_with_errors",
      progress: { done: 200, failed: 2 },
      error: { code: "items_failed" },
    });
  });

  test("running it again creates nothing new", async () => {
    const before = JSON.stringify([device.store.tasks, device.store.projects, device.store.notes, device.store.events]);
    const again = await ada("POST", "/trigger", { config_id: configId });
    const run = await waitForRun(ada, again.body.run_id);
    expect(run.status).toBe("completed_with_errors");
    expect(JSON.stringify([device.store.tasks, device.store.projects, device.store.notes, device.store.events])).toBe(
      before,
    );
  });

  test("GET /runs lists the user's runs newest first, with paging", async () => {
    const all = await ada("GET", "/runs");
    expect(all.status).toBe(200);
    expect(all.body.runs).toHaveLength(2);
    expect(all.body.runs[1].id).toBe(runId);
    const page = await ada("GET", "/runs?limit=1");
    expect(page.body.runs).toHaveLength(1);
    const next = await ada("GET", `/runs?limit=1&before=${encodeURIComponent(page.body.next_before)}`);
    expect(next.body.runs[0].id).toBe(runId);
    expect((await ada("GET", "/runs?limit=0")).status).toBe(422);
    expect((await bob("GET", "/runs")).body.runs).toEqual([]);
  });

  test("another user's run or configuration is 404 everywhere", async () => {
    expect((await bob("GET", `/runs/${runId}`)).status).toBe(404);
    expect((await bob("POST", `/runs/${runId}/cancel`)).status).toBe(404);
    expect((await bob("POST", "/trigger", { config_id: configId })).status).toBe(404);
    expect((await ada("GET", "/runs/not-a-uuid")).status).toBe(404);
    expect((await ada("POST", "/trigger", { config_id: crypto.randomUUID() })).status).toBe(404);
  });

  test("`curl -d` without a content type (a form body) is 415 naming application/json", async () => {
    // What `curl -H "Authorization: ..." -d config_id=... URL` sends: curl's form type and Accept.
    const response = await fetch(`${base}/api/v1/agents/trigger`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await ctx.token("ada", "power")}`,
        accept: "*/*",
        "user-agent": "curl/8.5.0",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: `config_id=${configId}`,
    });
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: 415,
      body: {
        error: {
          code: "unsupported_media_type",
          message: expect.stringContaining("application/json"),
          request_id: expect.any(String),
        },
      },
    });
  });

  test("a body without config_id is 422", async () => {
    expect((await ada("POST", "/trigger", {})).status).toBe(422);
  });

  test("a configuration whose type is above the caller's current tier cannot be triggered (403)", async () => {
    const powerConfig = await configure(ada, "timeline_batch", { documents: [{ title: "t", text: "x" }] });
    const downgraded = api(base, await ctx.token("ada", "pro"));
    const { status, body } = await downgraded("POST", "/trigger", { config_id: powerConfig });
    expect(status).toBe(403);
    expect(body.error.code).toBe("tier_insufficient");
  });

  test("every run route needs a token", async () => {
    await expectUnauthenticated(ada, "POST", "/trigger", { config_id: crypto.randomUUID() });
    await expectUnauthenticated(ada, "GET", "/runs");
    await expectUnauthenticated(ada, "GET", `/runs/${crypto.randomUUID()}`);
    await expectUnauthenticated(ada, "POST", `/runs/${crypto.randomUUID()}/cancel`);
  });
});

describe("a run's outcome says what happened", () => {
  test("every read timing out is a failed run, with the counts and the main error, also in the final agent_event", async () => {
    for (let n = 0; n < 8; n++) device.store.files.set(`/slow/s${n}.md`, `TASK: slow ${n}`);
    device.beforeCall = (name, args) => {
      if (name === "fs_read_file" && String(args.path).startsWith("/slow/"))
        throw new DeviceCallError("deadline_exceeded", "the device did not answer within 30000 ms");
    };
    try {
      const configId = await configure(ada, "filesystem", { path: "/slow" });
      const { body } = await ada("POST", "/trigger", { config_id: configId });
      const run = await waitForRun(ada, body.run_id);
      const error = {
        code: "items_failed",
        message: "8 of 8 item(s) failed; most often (8×): the device did not answer within 30000 ms",
      };
      expect(run).toMatchObject({ status: "failed", error, progress: { total: 8, done: 0, failed: 8 } });
      // The final frame is pushed after the run's row is written: wait for it rather than race it.
      const finished = await eventually(
        () => device.frames.filter((frame) => frame.run_id === body.run_id && frame.event === "finished"),
        (frames) => frames.length > 0,
      );
      expect(finished).toEqual([expect.objectContaining({ status: "failed", error, progress: expect.any(Object) })]);
      const listed = await ada("GET", `/runs?config_id=${configId}`);
      expect(listed.body.runs[0]).toMatchObject({ status: "failed", error });
    } finally {
      device.beforeCall = undefined;
    }
  });

  test("a run in which some items failed completed with errors; one in which none did succeeded", async () => {
    device.store.files.set("/mixed/ok.md", "TASK: fine");
    device.store.files.set("/mixed/bad.md", "UNREADABLE");
    const mixed = await configure(ada, "filesystem", { path: "/mixed" });
    const run = await waitForRun(ada, (await ada("POST", "/trigger", { config_id: mixed })).body.run_id);
    expect(run).toMatchObject({
      status: "completed_with_errors",
      error: { code: "items_failed", message: "1 of 2 item(s) failed; most often (1×): cannot read this file" },
      progress: { done: 1, failed: 1 },
    });
    device.store.files.set("/clean/ok.md", "TASK: fine");
    const clean = await configure(ada, "filesystem", { path: "/clean" });
    const good = await waitForRun(ada, (await ada("POST", "/trigger", { config_id: clean })).body.run_id);
    expect(good).toMatchObject({ status: "succeeded", error: null, progress: { done: 1, failed: 0 } });
  });
});

describe("a cloud batch run", () => {
  test("extracts from the documents in its configuration and writes only its kind", async () => {
    const before = device.store.tasks.length;
    const configId = await configure(ada, "task_batch", {
      documents: [
        { title: "standup", text: "TASK: ship the beta\nNOTE: ignored | not a task agent's job" },
        { title: "retro", text: "TASK: fix flaky test\nTASK: ship the beta" },
      ],
    });
    const { body } = await ada("POST", "/trigger", { config_id: configId });
    const run = await waitForRun(ada, body.run_id);
    expect(run).toMatchObject({ status: "succeeded", progress: { total: 2, done: 2 }, counts: { tasks: 3, notes: 0 } });
    expect(device.store.tasks.slice(before).map((task) => task.title)).toEqual([
      "ship the beta",
      "fix flaky test",
      "ship the beta",
    ]);
  });
});
