// How a run's item lanes end. Strategy: one agent replica on the test's PostgreSQL and Redis, with
// the in-memory device and the ai/test mock model (support/fakes.ts) wrapped so that the test can
// hold a device call or a model call and see every call that runs. A failing attempt is made by a
// PostgreSQL trigger refusing to record one file's outcome during the run's first attempt, as a
// database failover would; a device answer lost on its way (a Redis outage between the device's
// chat instance and the replica) is a call failing with `deadline_exceeded`, as the device RPC
// fails it. Calls are told apart by the AbortSignal they carry, which is one per round of item
// processing: a call carrying a new signal while one with an older signal still runs is an earlier
// attempt running beside its retry.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { TERMINAL_RUN_STATUSES } from "../../src/agent/model";
import { DeviceCallError, type DeviceCallOptions } from "../../src/shared/device-rpc";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { startAgent, trigger, waitForRun } from "./support/agents";
import { sampleFiles } from "./support/device-files";
import { type MemoryDevice, memoryDevice, mockModels } from "./support/fakes";
import { api } from "./support/http";

let ctx: TestContext;
beforeEach(async () => {
  ctx = await createTestContext();
});
afterEach(() => ctx.close());

const ended = (call: ReturnType<typeof api>, runId: string) => waitForRun(call, runId, TERMINAL_RUN_STATUSES, 20_000);

const WRITES = ["task_create", "project_create", "note_create", "timeline_add_event"];
const writeCalls = (device: MemoryDevice) =>
  Object.fromEntries(WRITES.map((name) => [name, device.store.calls.get(name) ?? 0]));
const expectedWrites = (expected: ReturnType<typeof sampleFiles>["expected"]) => ({
  task_create: expected.tasks,
  project_create: expected.projects,
  note_create: expected.notes,
  timeline_add_event: expected.events,
});

/** Every device and model call in flight, by the signal it carries; records calls of a new round overlapping older ones. */
function callWatch() {
  const running = new Map<symbol, { signal: AbortSignal | undefined; label: string }>();
  const overlaps: string[] = [];
  const rounds = new WeakSet<AbortSignal>();
  const listeners: Array<() => void> = [];
  return {
    overlaps,
    onOverlap: (listener: () => void) => listeners.push(listener),
    async run<T>(signal: AbortSignal | undefined, label: string, work: () => Promise<T>): Promise<T> {
      if (signal && !rounds.has(signal)) {
        rounds.add(signal);
        const older = [...running.values()].filter((call) => call.signal !== signal).map((call) => call.label);
        if (older.length > 0) {
          overlaps.push(`${label} started while still running: ${older.join(", ")}`);
          for (const listener of listeners) listener();
        }
      }
      const key = Symbol(label);
      running.set(key, { signal, label });
      try {
        return await work();
      } finally {
        running.delete(key);
      }
    },
  };
}

/** Holds the first call it is given until its signal aborts (remembered) or `release`. */
function holdOnce() {
  const released = Promise.withResolvers<void>();
  const state = { used: false, aborted: false };
  return {
    state,
    release: () => released.resolve(),
    async hold(signal: AbortSignal | undefined): Promise<void> {
      if (state.used) return;
      state.used = true;
      await new Promise<void>((resolve, reject) => {
        signal?.addEventListener(
          "abort",
          () => {
            state.aborted = true;
            reject(signal.reason);
          },
          { once: true },
        );
        released.promise.then(resolve);
      });
    },
  };
}

async function setup(user: string, device: MemoryDevice, env: Record<string, string>, models = mockModels()) {
  const server = await startAgent(ctx, device, env, { models });
  const call = api(server.url, await ctx.token(user, "power"));
  const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
  return { server, call, configId: body.id as string };
}

describe("a failing attempt", () => {
  test("stops every lane (device call cancelled, model call aborted) before its retry starts", async () => {
    const { files, expected } = sampleFiles("/docs", 30);
    const device = memoryDevice(files);
    const watch = callWatch();
    const heldRead = holdOnce(); // f0000 holds every kind of entity
    const heldModel = holdOnce();
    watch.onOverlap(() => {
      heldRead.release();
      heldModel.release();
    });
    ctx.defer(() => {
      heldRead.release();
      heldModel.release();
    });
    const memoryCall = device.rpc.call.bind(device.rpc);
    device.rpc = {
      ...device.rpc,
      call: (options: DeviceCallOptions) => {
        const path = (options.args as { path?: string }).path ?? "";
        return watch.run(options.signal, `${options.name} ${path}`.trim(), async () => {
          if (options.name === "fs_read_file" && path === "/docs/f0000.md") await heldRead.hold(options.signal);
          return memoryCall(options);
        });
      },
    };
    const models = mockModels({
      around: (prompt, signal, generate) =>
        watch.run(signal, "model call", async () => {
          if (prompt.includes("File: /docs/f0001.md")) await heldModel.hold(signal);
          return generate();
        }),
    });
    const { server, call, configId } = await setup("lanes", device, { AGENT_ITEM_CONCURRENCY: "3" }, models);
    await server.platform.db.execute(
      sql.raw(`
        create function agent.refuse_first_attempt() returns trigger language plpgsql as $$
        begin
          if new.item = '/docs/f0002.md' and new.status <> 'pending'
            and (select starts from agent.agent_run_logs where id = new.run_id) = 1 then
            raise exception 'the database refused to record this item';
          end if;
          return new;
        end $$;
        create trigger refuse_first_attempt before update on agent.agent_run_items
          for each row execute function agent.refuse_first_attempt();
      `),
    );

    const run = await ended(call, await trigger(call, configId));
    expect({
      status: run.status,
      progress: run.progress,
      counts: run.counts,
      overlaps: watch.overlaps,
      readCancelled: heldRead.state.aborted,
      modelCallAborted: heldModel.state.aborted,
      writes: writeCalls(device),
    }).toEqual({
      status: "succeeded",
      progress: { total: 30, done: 30, failed: 0, skipped: 0 },
      counts: expected,
      overlaps: [],
      readCancelled: true,
      modelCallAborted: true,
      writes: expectedWrites(expected),
    });
  }, 30_000);
});

describe("a device call reaching its deadline", () => {
  test("pauses the run like a disconnect and retries the file, instead of recording it failed", async () => {
    const { files, expected } = sampleFiles("/docs", 12);
    const device = memoryDevice(files);
    let timedOut = 0;
    device.beforeCall = (name, args) => {
      // The first read of f0003 and the first write of f0005's project: the answers never came back.
      if (name === "fs_read_file" && args.path === "/docs/f0003.md" && timedOut === 0) {
        timedOut++;
        throw new DeviceCallError("deadline_exceeded", "the device did not answer in time");
      }
      if (name === "project_create" && timedOut === 1 && args.name === "launch 5") {
        timedOut++;
        throw new DeviceCallError("deadline_exceeded", "the device did not answer in time");
      }
    };
    const { call, configId } = await setup("timeout-once", device, { AGENT_DEVICE_GRACE_MS: "5000" });
    const run = await ended(call, await trigger(call, configId));
    expect({ timedOut, status: run.status, progress: run.progress, counts: run.counts }).toEqual({
      timedOut: 2,
      status: "succeeded",
      progress: { total: 12, done: 12, failed: 0, skipped: 0 },
      counts: expected,
    });
    expect(device.store.tasks).toHaveLength(expected.tasks);
  });

  test("a file whose call reaches its deadline every time is recorded failed in the end, and the run ends", async () => {
    const { files, expected } = sampleFiles("/docs", 12);
    const device = memoryDevice(files);
    let reads = 0;
    device.beforeCall = (name, args) => {
      if (name !== "fs_read_file" || args.path !== "/docs/f0004.md") return;
      reads++;
      throw new DeviceCallError("deadline_exceeded", "the device did not answer in time");
    };
    const { call, configId } = await setup("timeout-always", device, { AGENT_DEVICE_GRACE_MS: "5000" });
    const run = await ended(call, await trigger(call, configId));
    expect({ reads, status: run.status, progress: run.progress, counts: run.counts }).toEqual({
      reads: 3,
      status: "completed_with_errors",
      progress: { total: 12, done: 11, failed: 1, skipped: 0 },
      counts: expected,
    });
  });
});
