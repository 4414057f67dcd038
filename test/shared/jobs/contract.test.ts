// One contract, two adapters: the in-process queue (embedded mode) and BullMQ on the real Redis.
// BullMQ alone is also tested across instances: shared work, and recovery of the job of a worker
// process killed with SIGKILL (a subprocess, since a promise cannot be killed inside one process).
import { afterEach, describe, expect, test } from "bun:test";
import {
  BullJobQueue,
  type Job,
  JobInterrupted,
  type JobQueue,
  type JobQueueOptions,
  MemoryJobQueue,
} from "../../../src/shared/jobs";
import { silentLogger } from "../../../src/shared/logger";
import type { RedisTopology } from "../../../src/shared/redis";
import {
  deleteKeysWithPrefix,
  eventually,
  randomSuffix,
  TcpProxy,
  TEST_REDIS_TOPOLOGY,
  TEST_REDIS_URL,
  viaProxy,
} from "../../../src/shared/testing";

type Data = { n: number };
const fast: JobQueueOptions = { attempts: 3, backoffMs: 20, lockMs: 1000, stalledIntervalMs: 500 };
const CLOSE_TIMEOUT_MS = 1000;

const opened: Array<JobQueue<Data>> = [];
const prefixes: string[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((queue) => queue.close()));
  await Promise.all(prefixes.splice(0).map((prefix) => deleteKeysWithPrefix(prefix)));
});

/** BullMQ's keys of a queue must share a slot on a Cluster: the prefix carries a hash tag there, as the services' does. */
const queuePrefix = (prefix: string, topology: RedisTopology) =>
  topology.kind === "cluster" ? `${prefix}:{bull}` : prefix;

function bull(
  prefix: string,
  name = "q",
  instanceId = randomSuffix(),
  topology: RedisTopology = TEST_REDIS_TOPOLOGY,
): JobQueue<Data> {
  const queue = new BullJobQueue<Data>({
    name,
    topology,
    prefix: queuePrefix(prefix, topology),
    logger: silentLogger(),
    instanceId,
    options: fast,
    closeTimeoutMs: CLOSE_TIMEOUT_MS,
  });
  opened.push(queue);
  return queue;
}

const adapters: Array<[string, () => JobQueue<Data>]> = [
  [
    "memory",
    () => {
      const queue = new MemoryJobQueue<Data>("q", fast);
      opened.push(queue);
      return queue;
    },
  ],
  [
    "bullmq",
    () => {
      const prefix = `t:${randomSuffix()}`;
      prefixes.push(prefix);
      return bull(prefix);
    },
  ],
];

for (const [name, open] of adapters) {
  describe(`job queue contract: ${name}`, () => {
    test("jobs added before any worker run once one starts, each exactly once", async () => {
      const queue = open();
      for (let n = 0; n < 10; n++) await queue.add(`job-${n}`, { n });
      expect((await queue.counts()).waiting).toBe(10);
      const seen: number[] = [];
      queue.process(async (job) => void seen.push(job.data.n), { concurrency: 3 });
      await eventually(
        () => seen.length,
        (count) => count >= 10,
      );
      await eventually(
        () => queue.counts(),
        (counts) => counts.waiting + counts.active === 0,
      );
      expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    test("adding an id that is already queued is a no-op", async () => {
      const queue = open();
      await queue.add("same", { n: 1 });
      await queue.add("same", { n: 2 });
      const seen: number[] = [];
      queue.process(async (job) => void seen.push(job.data.n), { concurrency: 1 });
      await eventually(
        () => queue.counts(),
        (counts) => seen.length > 0 && counts.waiting + counts.active === 0,
      );
      expect(seen).toEqual([1]);
    });

    test("concurrency bounds how many jobs run at once", async () => {
      const queue = open();
      let running = 0;
      let peak = 0;
      let finished = 0;
      queue.process(
        async () => {
          running++;
          peak = Math.max(peak, running);
          await Bun.sleep(20);
          running--;
          finished++;
        },
        { concurrency: 2 },
      );
      for (let n = 0; n < 8; n++) await queue.add(`c-${n}`, { n });
      await eventually(
        () => finished,
        (count) => count === 8,
      );
      expect(peak).toBe(2);
    });

    test("a throwing job is retried with its attempt number, up to the limit", async () => {
      const queue = open();
      const attempts: Array<[number, number]> = [];
      queue.process(
        async (job) => {
          attempts.push([job.attempt, job.maxAttempts]);
          throw new Error("boom");
        },
        { concurrency: 1 },
      );
      await queue.add("flaky", { n: 0 });
      await eventually(
        () => attempts.length,
        (count) => count >= 3,
      );
      await eventually(
        () => queue.counts(),
        (counts) => counts.waiting + counts.active === 0,
      );
      expect(attempts).toEqual([
        [1, 3],
        [2, 3],
        [3, 3],
      ]);
    });

    test("a job that has not started can be removed; a running one cannot", async () => {
      const queue = open();
      await queue.add("gone", { n: 0 });
      expect(await queue.remove("gone")).toBe(true);
      expect(await queue.remove("unknown")).toBe(false);
      const { promise: started, resolve } = Promise.withResolvers<void>();
      const { promise: release, resolve: finish } = Promise.withResolvers<void>();
      const seen: string[] = [];
      queue.process(
        async (job) => {
          seen.push(job.id);
          resolve();
          await release;
        },
        { concurrency: 1 },
      );
      await queue.add("busy", { n: 1 });
      await started;
      expect(await queue.remove("busy")).toBe(false);
      finish();
      await eventually(
        () => queue.counts(),
        (counts) => counts.waiting + counts.active === 0,
      );
      expect(seen).toEqual(["busy"]);
    });

    test("state says where a job is, and ensure adds only a job that is nowhere", async () => {
      const queue = open();
      expect(await queue.state("never")).toBe("missing");
      expect(await queue.ensure("never", { n: 1 })).toBe(true);
      expect(await queue.state("never")).toBe("waiting");
      expect(await queue.ensure("never", { n: 2 })).toBe(false);
      const { promise: started, resolve } = Promise.withResolvers<void>();
      const { promise: release, resolve: finish } = Promise.withResolvers<void>();
      const seen: number[] = [];
      queue.process(
        async (job) => {
          seen.push(job.data.n);
          resolve();
          await release;
        },
        { concurrency: 1 },
      );
      await started;
      expect(await queue.state("never")).toBe("active");
      expect(await queue.ensure("never", { n: 3 })).toBe(false);
      finish();
      await eventually(
        () => queue.state("never"),
        (state) => state === "missing",
      );
      expect(seen).toEqual([1]);
    });

    test("ensure brings back a job that failed for good", async () => {
      const queue = open();
      const seen: number[] = [];
      queue.process(
        async (job) => {
          seen.push(job.data.n);
          if (job.data.n === 1) throw new Error("boom");
        },
        { concurrency: 1 },
      );
      await queue.add("dead", { n: 1 });
      await eventually(
        () => seen.length,
        (count) => count === 3,
      );
      await eventually(
        () => queue.state("dead"),
        (state) => state === "missing",
      );
      expect(await queue.ensure("dead", { n: 2 })).toBe(true);
      await eventually(
        () => seen,
        (all) => all.includes(2),
      );
      expect(seen).toEqual([1, 1, 1, 2]);
    });

    test("close aborts running handlers and waits for them", async () => {
      const queue = open();
      const { promise: started, resolve } = Promise.withResolvers<void>();
      let reason: unknown;
      queue.process(
        async (job: Job<Data>) => {
          resolve();
          await new Promise((_, reject) =>
            job.signal.addEventListener("abort", () => {
              reason = job.signal.reason;
              reject(new JobInterrupted());
            }),
          );
        },
        { concurrency: 1 },
      );
      await queue.add("long", { n: 0 });
      await started;
      await queue.close();
      expect(reason).toBeInstanceOf(JobInterrupted);
    });
  });
}

describe("job queue across instances: bullmq", () => {
  const fresh = () => {
    const prefix = `t:${randomSuffix()}`;
    prefixes.push(prefix);
    return prefix;
  };

  test("two instances share the jobs, each runs once", async () => {
    const prefix = fresh();
    const [a, b] = [bull(prefix), bull(prefix)];
    const byInstance = { a: [] as number[], b: [] as number[] };
    // Slow enough that one instance cannot drain the queue before the other wakes up.
    a.process(
      async (job) => {
        byInstance.a.push(job.data.n);
        await Bun.sleep(15);
      },
      { concurrency: 2 },
    );
    b.process(
      async (job) => {
        byInstance.b.push(job.data.n);
        await Bun.sleep(15);
      },
      { concurrency: 2 },
    );
    for (let n = 0; n < 40; n++) await a.add(`s-${n}`, { n });
    await eventually(
      () => byInstance.a.length + byInstance.b.length,
      (count) => count >= 40,
    );
    await eventually(
      () => a.counts(),
      (counts) => counts.waiting + counts.active === 0,
    );
    expect([...byInstance.a, ...byInstance.b].sort((x, y) => x - y)).toEqual([...Array(40).keys()]);
    expect(byInstance.a.length).toBeGreaterThan(0);
    expect(byInstance.b.length).toBeGreaterThan(0);
  });

  test("an interrupted job goes back to the queue without spending an attempt", async () => {
    const prefix = fresh();
    const first = bull(prefix);
    const { promise: started, resolve } = Promise.withResolvers<void>();
    first.process(
      async (job) => {
        resolve();
        await new Promise((_, reject) => job.signal.addEventListener("abort", () => reject(new JobInterrupted())));
      },
      { concurrency: 1 },
    );
    await first.add("moved", { n: 7 });
    await started;
    await first.close();
    const second = bull(prefix);
    const { promise: resumed, resolve: done } = Promise.withResolvers<Job<Data>>();
    second.process(async (job) => done(job), { concurrency: 1 });
    const job = await resumed;
    expect({ id: job.id, data: job.data, attempt: job.attempt }).toEqual({ id: "moved", data: { n: 7 }, attempt: 1 });
  });

  test("the job of a killed worker process is taken over by another instance", async () => {
    const prefix = fresh();
    const producer = bull(prefix);
    await producer.add("orphan", { n: 42 });
    const child = Bun.spawn(
      [
        "bun",
        `${import.meta.dir}/crash-worker.ts`,
        JSON.stringify(TEST_REDIS_TOPOLOGY),
        queuePrefix(prefix, TEST_REDIS_TOPOLOGY),
        "q",
      ],
      {
        stdout: "pipe",
        stderr: "inherit",
      },
    );
    const reader = child.stdout.getReader();
    let output = "";
    while (!output.includes("started orphan")) {
      const { value, done } = await reader.read();
      if (done) break;
      output += new TextDecoder().decode(value);
    }
    expect(output).toContain("started orphan");
    child.kill("SIGKILL");
    await child.exited;
    const { promise: recovered, resolve } = Promise.withResolvers<Job<Data>>();
    bull(prefix).process(async (job) => resolve(job), { concurrency: 1 });
    const job = await recovered;
    expect({ id: job.id, data: job.data }).toEqual({ id: "orphan", data: { n: 42 } });
  });

  test("while Redis is unreachable, adding fails at once and closing gives up after its timeout", async () => {
    const proxy = new TcpProxy("127.0.0.1", Number(new URL(TEST_REDIS_URL).port || 6379));
    proxy.start();
    try {
      const queue = bull(fresh(), "q", randomSuffix(), { kind: "single", url: viaProxy(TEST_REDIS_URL, proxy.port) });
      queue.process(async () => {}, { concurrency: 1 });
      await queue.add("before", { n: 1 });
      proxy.cut();
      // Once the client has noticed the outage, an add is refused at once instead of waiting for Redis.
      const addOutcome = () =>
        Promise.race([
          queue.add(`during-${randomSuffix()}`, { n: 2 }).then(
            () => "added",
            () => "refused",
          ),
          Bun.sleep(300).then(() => "still waiting"),
        ]);
      expect(await eventually(addOutcome, (outcome) => outcome === "refused", 5000, 50)).toBe("refused");
      // The worker's blocking connection still waits for Redis, so a graceful quit never completes.
      const started = performance.now();
      await queue.close();
      expect(performance.now() - started).toBeLessThan(CLOSE_TIMEOUT_MS + 1500);
    } finally {
      proxy.stop();
    }
  });
});
