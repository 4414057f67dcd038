// One contract for the device RPC's pub/sub lane: the in-process bus (embedded mode) and the lane of
// the test topology (Bun's built-in Redis client on one node; ioredis on Sentinel; sharded pub/sub
// on a Cluster, when test/infra/redis-topologies.test.ts runs this file there), and for the inbox
// sender that batches on it. The Redis lane also goes through a TcpProxy in front of the real
// Redis, to cut its connections and check that subscriptions come back exactly once.
import { afterEach, describe, expect, test } from "bun:test";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { InboxSender, MAX_BATCH_CHARS } from "../../src/shared/device-rpc/inbox";
import { openLane, RedisLane, type RpcLane } from "../../src/shared/device-rpc/lane";
import { createKeys } from "../../src/shared/keys";
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

/** What arrives on an instance's inbox and on its batch channel, each Redis message as it came. */
async function listen(lane: RpcLane, instanceId: string, keys: ReturnType<typeof createKeys>, batches = true) {
  const inbox: string[] = [];
  const batch: string[] = [];
  await lane.subscribe(keys.instanceInbox(instanceId), (message) => inbox.push(message));
  if (batches) await lane.subscribe(keys.instanceBatchInbox(instanceId), (message) => batch.push(message));
  return { inbox, batch };
}

const message = (n: number, pad = "") => JSON.stringify({ t: "result", id: `c${n}`, ok: true, result: pad, ts: 1 });

for (const [name, open] of adapters) {
  describe(`inbox sender over the lane: ${name}`, () => {
    let lane: RpcLane;
    afterEach(() => lane.close());
    const keys = createKeys(`t:${randomSuffix()}`);

    test("a turn's messages for one inbox leave as one batch in order; a lone message goes to the inbox", async () => {
      lane = open();
      const sender = new InboxSender(lane, keys);
      const seen = await listen(lane, "i1", keys);
      const other = await listen(lane, "i2", keys);
      const sent = await Promise.all([
        sender.send("i1", message(1)),
        sender.send("i2", message(9)),
        sender.send("i1", message(2)),
        sender.send("i1", message(3)),
      ]);
      expect(sent.every((receivers) => receivers >= 1)).toBe(true);
      expect(await sender.send("i1", message(4))).toBeGreaterThanOrEqual(1);
      await eventually(
        () => seen.inbox.length + other.inbox.length,
        (count) => count === 2,
      );
      expect(seen.batch).toEqual([`[${message(1)},${message(2)},${message(3)}]`]);
      expect(seen.inbox).toEqual([message(4)]);
      expect(other).toEqual({ inbox: [message(9)], batch: [] });
    });

    test("an inbox of an earlier version (no batch channel) takes a batch one message at a time, in order", async () => {
      lane = open();
      const sender = new InboxSender(lane, keys);
      const seen = await listen(lane, "old", keys, false);
      const texts = [1, 2, 3, 4].map((n) => message(n));
      const sent = await Promise.all(texts.map((text) => sender.send("old", text)));
      expect(sent.every((receivers) => receivers >= 1)).toBe(true);
      await eventually(
        () => seen.inbox.length,
        (count) => count === 4,
      );
      expect(seen.inbox).toEqual(texts);
    });

    test("nobody listening: every message of a batch reports 0 receivers", async () => {
      lane = open();
      const sender = new InboxSender(lane, keys);
      expect(await Promise.all([sender.send("gone", message(1)), sender.send("gone", message(2))])).toEqual([0, 0]);
    });

    test("a batch larger than the cap leaves in parts, none over it, every message once and in order", async () => {
      lane = open();
      const sender = new InboxSender(lane, keys);
      const seen = await listen(lane, "big", keys);
      const texts = Array.from({ length: 100 }, (_, n) => message(n, "x".repeat(2000)));
      await Promise.all(texts.map((text) => sender.send("big", text)));
      await eventually(
        () => [...seen.batch, ...seen.inbox].flatMap((part) => [JSON.parse(part)].flat()).length,
        (count) => count === 100,
      );
      expect(seen.batch.length).toBeGreaterThan(1);
      for (const part of seen.batch) expect(part.length).toBeLessThanOrEqual(MAX_BATCH_CHARS + 100);
      const received = [...seen.batch, ...seen.inbox].flatMap((part) => [JSON.parse(part)].flat());
      expect(received.map((item: { id: string }) => item.id)).toEqual(texts.map((_, n) => `c${n}`));
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
    // Taken by Redis is not yet read by the subscriber: cutting before it arrives would lose it in the proxy.
    await eventually(
      () => seen.length,
      (count) => count === 1,
    );

    proxy.cut();
    const started = performance.now();
    expect(await lane.publish(channel, "down").catch(() => "failed")).toBe("failed");
    // At once: not after a reconnect attempt (3 s connect timeout); 1 s leaves room for a loaded machine.
    expect(performance.now() - started).toBeLessThan(1000);

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

describe("inbox sender across a connection loss", () => {
  test("a publish refused while Redis is unreachable fails every message of its batch, at once", async () => {
    const redisPort = Number(new URL(TEST_REDIS_URL).port || 6379);
    const proxy = new TcpProxy("127.0.0.1", redisPort);
    const lane = new RedisLane(viaProxy(TEST_REDIS_URL, proxy.start()), silentLogger());
    try {
      const sender = new InboxSender(lane, createKeys(`t:${randomSuffix()}`));
      expect(await sender.send("i1", message(0))).toBe(0);
      proxy.cut();
      const started = performance.now();
      const outcomes = await Promise.all(
        [1, 2, 3].map((n) => sender.send("i1", message(n)).then(String, () => "failed")),
      );
      expect(outcomes).toEqual(["failed", "failed", "failed"]);
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      await lane.close();
      proxy.stop();
    }
  }, 20_000);
});
