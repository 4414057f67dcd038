// One contract, two adapters: the in-process bus (embedded mode) and the Redis bus must agree.
import { afterEach, describe, expect, test } from "bun:test";
import type { Bus } from "../../src/shared/bus/bus";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { RedisBus } from "../../src/shared/bus/redis-bus";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { randomSuffix, TEST_REDIS_URL } from "../../src/shared/testing";

const adapters: Array<[string, () => { bus: Bus; close: () => void }]> = [
  ["memory", () => ({ bus: new MemoryBus(), close: () => {} })],
  [
    "redis",
    () => {
      const logger = silentLogger();
      const publisher = openRedis({ url: TEST_REDIS_URL, logger, name: "bus-test-pub" });
      const subscriber = openRedis({ url: TEST_REDIS_URL, logger, name: "bus-test-sub" });
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

/** Subscribes (resolving once the subscription is live); `received` is the first message. */
async function firstMessage(bus: Bus, channel: string) {
  const { promise, resolve } = Promise.withResolvers<{ message: string; channel: string }>();
  const unsubscribe = await bus.subscribe(channel, (message, from) => resolve({ message, channel: from }));
  return { received: promise, unsubscribe };
}

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
      // Redis counts connections, memory counts handlers: both say "somebody listens".
      expect(counts.every((count) => count >= 1)).toBe(true);
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
      const first = await firstMessage(handle.bus, channel);
      expect(await handle.bus.publish(channel, "one")).toBeGreaterThan(0);
      expect(await first.received).toEqual({ message: "one", channel });
      await first.unsubscribe();
      expect(await handle.bus.publish(channel, "two")).toBe(0);
    });
  });
}
