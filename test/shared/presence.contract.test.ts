// One contract, two adapters: the in-process presence (embedded mode) and the Redis presence must agree.
import { afterEach, describe, expect, test } from "bun:test";
import type { Bus } from "../../src/shared/bus/bus";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { openLane } from "../../src/shared/device-rpc/lane";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import type { Lease, Presence } from "../../src/shared/presence";
import { MemoryPresence } from "../../src/shared/presence/memory-presence";
import { RedisPresence } from "../../src/shared/presence/redis-presence";
import { openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, eventually, randomSuffix, TEST_REDIS_TOPOLOGY } from "../../src/shared/testing";

interface Handle {
  presence: Presence;
  /** Where calls for another instance are handed over: the bus in embedded mode, the RPC lane on Redis. */
  bus: Pick<Bus, "subscribe">;
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
      const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger, name: "presence-test" });
      const lane = openLane(TEST_REDIS_TOPOLOGY, logger);
      return {
        presence: new RedisPresence(redis, keys, lane),
        bus: lane,
        keys,
        async close() {
          await lane.close();
          await deleteKeysWithPrefix(keys.prefix);
          redis.disconnect();
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

    test("admit: new devices up to the cap; the same device always gets back in, replacing its connection", async () => {
      handle = open();
      const { presence } = handle;
      await presence.markInstance("i1", 10_000);
      await presence.markInstance("i2", 10_000);
      const laptop = lease({ deviceId: "laptop", connectedAt: 1000 });
      const desktop = lease({ deviceId: "desktop", connectedAt: 1001 });
      const phone = lease({ deviceId: "phone", connectedAt: 1002 });
      expect(await presence.admit(laptop, 10_000, 2)).toEqual({ status: "admitted" });
      expect(await presence.admit(desktop, 10_000, 2)).toEqual({ status: "admitted" });
      expect(await presence.admit(phone, 10_000, 2)).toEqual({ status: "full" });
      const reconnected = lease({ deviceId: "laptop", instanceId: "i2", connectedAt: 2000 });
      expect(await presence.admit(reconnected, 10_000, 2)).toEqual({
        status: "admitted",
        replaced: { connectionId: laptop.connectionId, instanceId: "i1" },
      });
      // A connection older than the device's current one arrives late: it must not take the slot back.
      const late = lease({ deviceId: "laptop", connectedAt: 1500 });
      expect(await presence.admit(late, 10_000, 2)).toEqual({ status: "superseded" });
      // Its old connection's renewal (not yet closed) keeps its lease but not the slot.
      await presence.put(laptop, 10_000);
      expect(await presence.admit(lease({ deviceId: "laptop", connectedAt: 1800 }), 10_000, 2)).toEqual({
        status: "superseded",
      });
      const listed = (await presence.list("u1")).map((each) => each.connectionId);
      expect(listed).toEqual([reconnected.connectionId, desktop.connectionId, laptop.connectionId]);
    });

    test("a device's slot is freed by its connection's removal, expiry or dead instance, never by a replaced one", async () => {
      handle = open();
      const { presence } = handle;
      await presence.markInstance("i1", 10_000);
      await presence.markInstance("i2", 10_000);
      const first = lease({ deviceId: "laptop", connectedAt: 1000 });
      const second = lease({ deviceId: "laptop", connectedAt: 2000 });
      expect(await presence.admit(first, 10_000, 1)).toEqual({ status: "admitted" });
      expect(await presence.admit(second, 10_000, 1)).toMatchObject({ status: "admitted" });
      expect(await presence.remove("u1", first.connectionId)).toBe(true);
      expect(await presence.admit(lease({ deviceId: "phone" }), 10_000, 1)).toEqual({ status: "full" });
      expect(await presence.remove("u1", second.connectionId)).toBe(true);
      const onI2 = lease({ deviceId: "phone", instanceId: "i2" });
      expect(await presence.admit(onI2, 10_000, 1)).toEqual({ status: "admitted" });
      await presence.dropInstance("i2");
      const short = lease({ deviceId: "tablet" });
      expect(await presence.admit(short, 150, 1)).toEqual({ status: "admitted" });
      const next = await eventually(
        () => presence.admit(lease({ deviceId: "watch" }), 10_000, 1),
        (admission) => admission.status === "admitted",
      );
      expect(next).toEqual({ status: "admitted" });
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
