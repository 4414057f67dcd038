// One contract for the device RPC's pub/sub lane: the in-process bus (embedded mode) and the lane of
// the test topology (Bun's built-in Redis client on one node; ioredis on Sentinel; sharded pub/sub
// on a Cluster, when test/infra/redis-topologies.test.ts runs this file there). The Redis lane also goes through a TcpProxy in front of the
// real Redis, to cut its connections and check that subscriptions come back exactly once.
import { afterEach, describe, expect, test } from "bun:test";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { openLane, RedisLane, type RpcLane } from "../../src/shared/device-rpc/lane";
import { silentLogger } from "../../src/shared/logger";
import {
  eventually,
  randomSuffix,
  TcpProxy,
  TEST_REDIS_TOPOLOGY,
  TEST_REDIS_URL,
  viaProxy,
} from "../../src/shared/testing";

const adapters: Array<[string, () => RpcLane]> = [
  ["memory", () => new MemoryBus()],
  [`redis (${TEST_REDIS_TOPOLOGY.kind})`, () => openLane(TEST_REDIS_TOPOLOGY, silentLogger())],
];

for (const [name, open] of adapters) {
  describe(`device rpc lane contract: ${name}`, () => {
    let lane: RpcLane;
    afterEach(() => lane.close());

    test("publish to nobody reports 0 receivers", async () => {
      lane = open();
      expect(await lane.publish(`t:${randomSuffix()}:nobody`, "x")).toBe(0);
    });

    test("a subscriber receives messages in order, once, with its channel", async () => {
      lane = open();
      const channel = `t:${randomSuffix()}:c`;
      const seen: Array<[string, string]> = [];
      await lane.subscribe(channel, (message, from) => seen.push([message, from]));
      const counts = [];
      for (const message of ["1", "2", "3"]) counts.push(await lane.publish(channel, message));
      await eventually(
        () => seen.length,
        (count) => count === 3,
      );
      expect(seen).toEqual([
        ["1", channel],
        ["2", channel],
        ["3", channel],
      ]);
      expect(counts.every((count) => count >= 1)).toBe(true);
    });

    test("after the last unsubscribe nothing is delivered", async () => {
      lane = open();
      const channel = `t:${randomSuffix()}:u`;
      const seen: string[] = [];
      const first = await lane.subscribe(channel, (message) => seen.push(`a:${message}`));
      const second = await lane.subscribe(channel, (message) => seen.push(`b:${message}`));
      await first();
      expect(await lane.publish(channel, "one")).toBeGreaterThan(0);
      await eventually(
        () => seen.length,
        (count) => count === 1,
      );
      await second();
      expect(await lane.publish(channel, "two")).toBe(0);
      expect(seen).toEqual(["b:one"]);
    });
  });
}

describe("redis lane across a connection loss", () => {
  let proxy: TcpProxy | undefined;
  let lane: RpcLane | undefined;
  afterEach(async () => {
    await lane?.close();
    proxy?.stop();
  });

  test("publishes fail at once while down; subscriptions come back, delivering each message once", async () => {
    const redisPort = Number(new URL(TEST_REDIS_URL).port || 6379);
    proxy = new TcpProxy("127.0.0.1", redisPort);
    const url = viaProxy(TEST_REDIS_URL, proxy.start());
    lane = new RedisLane(url, silentLogger());
    const channel = `t:${randomSuffix()}:r`;
    const seen: string[] = [];
    await lane.subscribe(channel, (message) => seen.push(message));
    expect(await lane.publish(channel, "before")).toBe(1);

    proxy.cut();
    const started = performance.now();
    expect(await lane.publish(channel, "down").catch(() => "failed")).toBe("failed");
    expect(performance.now() - started).toBeLessThan(100);

    proxy.resume();
    const live = lane;
    await eventually(
      () => live.publish(channel, "probe").catch(() => 0),
      (receivers) => receivers === 1,
      10_000,
      100,
    );
    await live.publish(channel, "after");
    await eventually(
      () => seen.at(-1),
      (last) => last === "after",
    );
    expect(seen.filter((message) => message === "after")).toEqual(["after"]);
    expect(seen[0]).toBe("before");
    expect(seen).not.toContain("down");
  }, 20_000);
});
