// One contract, two adapters: the in-process bus (embedded mode) and the Redis bus must agree.
import { afterEach, describe, expect, test } from "bun:test";
import type { Bus } from "../../src/shared/bus/bus";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { RedisBus } from "../../src/shared/bus/redis-bus";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { eventually, randomSuffix, TEST_REDIS_TOPOLOGY } from "../../src/shared/testing";

/**
 * On a Redis Cluster, PUBLISH reaches every node's subscribers but counts only those connected to
 * the node that took it: the count is a lower bound there (docs/architecture.md, "Redis topologies").
 */
const countsEveryReceiver = (adapter: string) => adapter === "memory" || TEST_REDIS_TOPOLOGY.kind !== "cluster";

const adapters: Array<[string, () => { bus: Bus; close: () => void }]> = [
  ["memory", () => ({ bus: new MemoryBus(), close: () => {} })],
  [
    `redis (${TEST_REDIS_TOPOLOGY.kind})`,
    () => {
      const logger = silentLogger();
      const publisher = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger, name: "bus-test-pub" });
      const subscriber = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger, name: "bus-test-sub" });
      return {
        bus: new RedisBus(publisher, subscriber),
        close: () => {
          publisher.disconnect();
          subscriber.disconnect();
        },
      };
    },
  ],
];

for (const [name, open] of adapters) {
  describe(`bus contract: ${name}`, () => {
    let handle: ReturnType<typeof open>;
    afterEach(async () => {
      await handle.bus.close();
      handle.close();
    });

    test("publish to nobody reports 0 receivers", async () => {
      handle = open();
      expect(await handle.bus.publish(`t:${randomSuffix()}:nobody`, "x")).toBe(0);
    });

    test("a subscriber receives messages in order and publish counts it once", async () => {
      handle = open();
      const channel = `t:${randomSuffix()}:c`;
      const seen: string[] = [];
      const { promise: done, resolve } = Promise.withResolvers<void>();
      await handle.bus.subscribe(channel, (message) => {
        seen.push(message);
        if (seen.length === 3) resolve();
      });
      await handle.bus.subscribe(channel, () => {});
      const counts = [
        await handle.bus.publish(channel, "1"),
        await handle.bus.publish(channel, "2"),
        await handle.bus.publish(channel, "3"),
      ];
      await done;
      expect(seen).toEqual(["1", "2", "3"]);
      // Redis counts connections, memory counts handlers: both say "somebody listens" (a Cluster
      // may say 0: it counts the publishing node's subscribers only, never more than there are).
      if (countsEveryReceiver(name)) expect(counts.every((count) => count >= 1)).toBe(true);
      else expect(counts.every((count) => count <= 1)).toBe(true);
    });

    test("pattern subscriptions see the concrete channel", async () => {
      handle = open();
      const base = `t:${randomSuffix()}`;
      const { promise: got, resolve } = Promise.withResolvers<{ message: string; channel: string }>();
      await handle.bus.psubscribe(`${base}:user:*`, (message, channel) => resolve({ message, channel }));
      await handle.bus.publish(`${base}:user:42`, "hi");
      expect(await got).toEqual({ message: "hi", channel: `${base}:user:42` });
    });

    test("after unsubscribe nothing is delivered", async () => {
      handle = open();
      const channel = `t:${randomSuffix()}:u`;
      const delivered: string[] = [];
      const unsubscribe = await handle.bus.subscribe(channel, (message) => delivered.push(message));
      const count = await handle.bus.publish(channel, "one");
      if (countsEveryReceiver(name)) expect(count).toBeGreaterThan(0);
      await eventually(
        () => delivered.length,
        (length) => length === 1,
      );
      await unsubscribe();
      const markers: string[] = [];
      await handle.bus.subscribe(`${channel}:marker`, (message) => markers.push(message));
      expect(await handle.bus.publish(channel, "two")).toBe(0);
      // Published after "two": once it has arrived, "two" had its chance to arrive too.
      await handle.bus.publish(`${channel}:marker`, "marker");
      await eventually(
        () => markers.length,
        (length) => length === 1,
      );
      expect(delivered).toEqual(["one"]);
    });
  });
}
