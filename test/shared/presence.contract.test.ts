// One contract, two adapters: the in-process presence (embedded mode) and the Redis presence must agree.
import { afterEach, describe, expect, test } from "bun:test";
import type { Bus } from "../../src/shared/bus/bus";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { RedisBus } from "../../src/shared/bus/redis-bus";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import type { Lease, Presence } from "../../src/shared/presence";
import { MemoryPresence } from "../../src/shared/presence/memory-presence";
import { RedisPresence } from "../../src/shared/presence/redis-presence";
import { openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, eventually, randomSuffix, TEST_REDIS_URL } from "../../src/shared/testing";

interface Handle {
  presence: Presence;
  bus: Bus;
  keys: ReturnType<typeof createKeys>;
  close(): Promise<void>;
}

const adapters: Array<[string, () => Handle]> = [
  [
    "memory",
    () => {
      const keys = createKeys(`t:${randomSuffix()}`);
      const bus = new MemoryBus();
      return { presence: new MemoryPresence(bus, keys), bus, keys, close: () => bus.close() };
    },
  ],
  [
    "redis",
    () => {
      const keys = createKeys(`t:${randomSuffix()}`);
      const logger = silentLogger();
      const redis = openRedis({ url: TEST_REDIS_URL, logger, name: "presence-test" });
      const subscriber = openRedis({ url: TEST_REDIS_URL, logger, name: "presence-test-sub" });
      const bus = new RedisBus(redis, subscriber);
      return {
        presence: new RedisPresence(redis, keys),
        bus,
        keys,
        async close() {
          await bus.close();
          await deleteKeysWithPrefix(keys.prefix);
          redis.disconnect();
          subscriber.disconnect();
        },
      };
    },
  ],
];

const lease = (overrides: Partial<Lease> = {}): Lease => ({
  userId: "u1",
  deviceId: "laptop",
  deviceName: "Laptop",
  connectionId: crypto.randomUUID(),
  instanceId: "i1",
  tools: ["task_list"],
  connectedAt: 1000,
  ...overrides,
});

for (const [name, open] of adapters) {
  describe(`presence contract: ${name}`, () => {
    let handle: Handle;
    afterEach(() => handle.close());

    test("leases of live instances are listed most recent first", async () => {
      handle = open();
      const { presence } = handle;
      await presence.markInstance("i1", 10_000);
      const older = lease({ connectedAt: 1000 });
      const newer = lease({ deviceId: "desktop", deviceName: undefined, connectedAt: 2000, tools: [] });
      await presence.put(older, 10_000);
      await presence.put(newer, 10_000);
      expect(await presence.list("u1")).toEqual([newer, older]);
      expect(await presence.list("u2")).toEqual([]);
    });

    test("a lease on an instance that is not alive is ignored", async () => {
      handle = open();
      const { presence } = handle;
      await presence.put(lease({ instanceId: "gone" }), 10_000);
      expect(await presence.list("u1")).toEqual([]);
      await presence.markInstance("gone", 10_000);
      expect(await presence.list("u1")).toHaveLength(1);
      await presence.dropInstance("gone");
      expect(await presence.instancesAlive(["gone", "never"])).toEqual([false, false]);
      expect(await presence.list("u1")).toEqual([]);
    });

    test("remove is compare-and-delete: the old connection cannot erase the new one", async () => {
      handle = open();
      const { presence } = handle;
      await presence.markInstance("i1", 10_000);
      await presence.markInstance("i2", 10_000);
      const old = lease({ instanceId: "i1", connectedAt: 1000 });
      const reconnected = lease({ instanceId: "i2", connectedAt: 2000 });
      await presence.put(old, 10_000);
      await presence.put(reconnected, 10_000);
      expect(await presence.remove("u1", old.connectionId)).toBe(true);
      expect(await presence.remove("u1", old.connectionId)).toBe(false);
      expect(await presence.list("u1")).toEqual([reconnected]);
    });

    test("leases expire unless refreshed, and refresh recreates a lost lease", async () => {
      handle = open();
      const { presence } = handle;
      await presence.markInstance("i1", 10_000);
      const short = lease();
      await presence.put(short, 150);
      expect(await presence.list("u1")).toHaveLength(1);
      expect(
        await eventually(
          () => presence.list("u1"),
          (leases) => leases.length === 0,
        ),
      ).toEqual([]);
      await presence.refresh([short], 10_000);
      expect(await presence.list("u1")).toEqual([short]);
    });

    test("dispatch: offline, local, sent to the owner's inbox, or unreachable", async () => {
      handle = open();
      const { presence, bus, keys } = handle;
      await presence.markInstance("i1", 10_000);
      await presence.markInstance("i2", 10_000);
      expect(await presence.dispatch("u1", undefined, "i1", '{"t":"call"}')).toEqual({ status: "offline" });
      const onI1 = lease({ instanceId: "i1", deviceId: "laptop", connectedAt: 1000 });
      const onI2 = lease({ instanceId: "i2", deviceId: "desktop", connectedAt: 2000 });
      await presence.put(onI1, 10_000);
      await presence.put(onI2, 10_000);
      expect(await presence.dispatch("u1", "laptop", "i1", '{"t":"call"}')).toEqual({
        status: "local",
        connectionId: onI1.connectionId,
        instanceId: "i1",
      });
      expect(await presence.dispatch("u1", undefined, "i1", '{"t":"call"}')).toMatchObject({ status: "unreachable" });
      const { promise: received, resolve } = Promise.withResolvers<string>();
      await bus.subscribe(keys.instanceInbox("i2"), resolve);
      expect(await presence.dispatch("u1", undefined, "i1", '{"t":"call","id":"x"}')).toEqual({
        status: "sent",
        connectionId: onI2.connectionId,
        instanceId: "i2",
      });
      expect(JSON.parse(await received)).toEqual({ c: onI2.connectionId, t: "call", id: "x" });
      expect(await presence.dispatch("u1", "phone", "i1", '{"t":"call"}')).toEqual({ status: "offline" });
    });
  });
}
