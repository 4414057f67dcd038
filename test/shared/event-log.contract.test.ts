// One contract, two adapters: Redis Streams with consumer groups and the in-process event log must
// agree on delivery, acknowledgement and redelivery of what a failed or crashed consumer left pending.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { EventConsumer, EventEntry, EventLog } from "../../src/shared/events/event-log";
import { MemoryEventLog } from "../../src/shared/events/memory-event-log";
import { REPLICA_WAIT_MS, RedisEventLog } from "../../src/shared/events/redis-event-log";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, eventually, randomSuffix, TEST_REDIS_TOPOLOGY } from "../../src/shared/testing";

const prefix = `t:${randomSuffix()}`;
const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "event-log-contract" });
afterAll(async () => {
  await deleteKeysWithPrefix(prefix);
  redis.disconnect();
});

const adapters: Array<[string, () => EventLog]> = [
  ["memory", () => new MemoryEventLog()],
  ["redis", () => new RedisEventLog(redis, silentLogger())],
];

for (const [name, make] of adapters) {
  describe(`event log contract: ${name}`, () => {
    const consumers: EventConsumer[] = [];
    afterEach(async () => {
      await Promise.all(consumers.splice(0).map((consumer) => consumer.stop()));
    });
    const stream = () => `${prefix}:${name}:${randomSuffix()}`;

    /** Starts a consumer that records payloads; `fail` decides per entry whether the handler throws. */
    async function collect(
      log: EventLog,
      options: { stream: string; group: string; consumer: string; claimIdleMs?: number },
      fail: (entry: EventEntry) => boolean = () => false,
    ) {
      const seen: string[] = [];
      const consumer = await log.consume({
        ...options,
        blockMs: 50,
        handler: async (entry) => {
          if (fail(entry)) throw new Error("handler failed");
          seen.push(entry.payload);
        },
      });
      consumers.push(consumer);
      return { seen, consumer };
    }

    test("events appended before the group existed are delivered, in order", async () => {
      const log = make();
      const s = stream();
      for (const payload of ["1", "2", "3"]) await log.append(s, payload);
      const { seen } = await collect(log, { stream: s, group: "auth", consumer: "a" });
      await log.append(s, "4");
      expect(
        await eventually(
          () => [...seen],
          (v) => v.length === 4,
        ),
      ).toEqual(["1", "2", "3", "4"]);
    });

    test("within a group each event reaches one consumer; every group sees all events", async () => {
      const log = make();
      const s = stream();
      const a = await collect(log, { stream: s, group: "auth", consumer: "a" });
      const b = await collect(log, { stream: s, group: "auth", consumer: "b" });
      const other = await collect(log, { stream: s, group: "chat", consumer: "c" });
      const payloads = Array.from({ length: 20 }, (_, i) => String(i));
      for (const payload of payloads) await log.append(s, payload);
      await eventually(
        () => a.seen.length + b.seen.length,
        (n) => n === 20,
      );
      await eventually(
        () => other.seen.length,
        (n) => n === 20,
      );
      expect([...a.seen, ...b.seen].sort()).toEqual([...payloads].sort());
      expect(other.seen).toEqual(payloads);
    });

    test("acknowledged events are not delivered again to a restarted consumer", async () => {
      const log = make();
      const s = stream();
      const first = await collect(log, { stream: s, group: "auth", consumer: "a", claimIdleMs: 100 });
      await log.append(s, "once");
      await eventually(
        () => first.seen.length,
        (n) => n === 1,
      );
      await first.consumer.stop();
      const second = await collect(log, { stream: s, group: "auth", consumer: "b", claimIdleMs: 100 });
      await log.append(s, "twice");
      await eventually(
        () => second.seen.length,
        (n) => n === 1,
      );
      // Longer than the claim time: had "once" been left pending, it would have come back by now.
      await Bun.sleep(300);
      expect(second.seen).toEqual(["twice"]);
    });

    test("an event whose handler failed is delivered again after the claim time", async () => {
      const log = make();
      const s = stream();
      let attempts = 0;
      const { seen } = await collect(log, { stream: s, group: "auth", consumer: "a", claimIdleMs: 100 }, () => {
        attempts += 1;
        return attempts === 1;
      });
      await log.append(s, "retry me");
      expect(
        await eventually(
          () => [...seen],
          (v) => v.length === 1,
        ),
      ).toEqual(["retry me"]);
      expect(attempts).toBe(2);
    });

    test("pending counts what the group was given and has not acknowledged", async () => {
      const log = make();
      const s = stream();
      let failing = true;
      const { seen, consumer } = await collect(
        log,
        { stream: s, group: "auth", consumer: "a", claimIdleMs: 200 },
        (entry) => failing && entry.payload === "poison",
      );
      await log.append(s, "fine");
      await log.append(s, "poison");
      await eventually(
        () => [...seen],
        (v) => v.length === 1,
      );
      expect(
        await eventually(
          () => consumer.pending(),
          (n) => n === 1,
        ),
      ).toBe(1);
      failing = false;
      expect(
        await eventually(
          () => consumer.pending(),
          (n) => n === 0,
        ),
      ).toBe(0);
      expect(seen).toEqual(["fine", "poison"]);
    });

    test("a crashed consumer's pending events are claimed by another consumer of the group", async () => {
      const log = make();
      const s = stream();
      let attempts = 0;
      const crashed = await collect(log, { stream: s, group: "auth", consumer: "dead", claimIdleMs: 150 }, () => {
        attempts += 1;
        return true;
      });
      await log.append(s, "orphan");
      await eventually(
        () => attempts,
        (n) => n > 0,
      );
      await crashed.consumer.stop();
      const survivor = await collect(log, { stream: s, group: "auth", consumer: "alive", claimIdleMs: 150 });
      expect(
        await eventually(
          () => [...survivor.seen],
          (v) => v.length === 1,
        ),
      ).toEqual(["orphan"]);
    });
  });
}

describe("event log on Redis: replicas", () => {
  // One node has no replica; the Sentinel and Cluster of test/infra/redis-topologies.test.ts have one per master.
  const replicas = TEST_REDIS_TOPOLOGY.kind === "single" ? 0 : 1;

  test("an append resolves once the replicas it waits for hold the event", async () => {
    const log = new RedisEventLog(redis, silentLogger(), { replicas });
    const stream = `${prefix}:replicated:${randomSuffix()}`;
    const id = await log.append(stream, "held");
    const [entry] = (await redis.xrange(stream, id, id)) as Array<[string, string[]]>;
    expect(entry?.[1]).toEqual(["event", "held"]);
  });

  test("an append that more replicas than exist must hold fails after the wait, naming the count", async () => {
    const log = new RedisEventLog(redis, silentLogger(), { replicas: replicas + 1 });
    const started = performance.now();
    await expect(log.append(`${prefix}:unreplicated:${randomSuffix()}`, "not held")).rejects.toThrow(
      `the event reached ${replicas} of ${replicas + 1} Redis replicas in ${REPLICA_WAIT_MS} ms`,
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(REPLICA_WAIT_MS - 50);
  });
});
