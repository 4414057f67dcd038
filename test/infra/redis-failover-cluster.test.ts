// The services through a Redis Cluster failover, under load: a real Cluster (3 masters, 3
// replicas; src/shared/testing/redis-servers.ts) and every service on it, in process. While device
// calls, agent runs, a rate-limited route and tier changes are under way, one master is killed
// (SIGKILL) and its replica promoted; no service is restarted. The killed master is the one that
// matters: it serves the job queue (`{bull}`), the tier-change stream and the chat instances'
// liveness marks, and the ids the scenarios use (chat instances' inboxes, users' presence and
// rate-limit keys) are drawn so that their keys sit on it too. In production any of the three
// masters may be the one that dies; here it is always the one every scenario depends on. What each
// scenario must show is in redis-failover-world.ts (`failoverChecks`). Skipped, with its reason,
// without redis-server and redis-cli.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { createKeys } from "../../src/shared/keys";
import { keySlot } from "../../src/shared/redis-slot";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import {
  type HostPort,
  type RedisClusterHandle,
  redisBinariesAvailable,
  startRedisCluster,
} from "../../src/shared/testing/redis-servers";
import {
  type FailoverWorld,
  failoverChecks,
  runThroughSwitch,
  type SwitchRecord,
  startFailoverWorld,
  timed,
} from "./redis-failover-world";

const available = redisBinariesAvailable();
if (!available.cluster) console.log(`skipped: ${available.reason}`);
const skipped = available.cluster ? "" : ` (skipped: ${available.reason})`;

/** Which master's port serves each slot, from CLUSTER SLOTS asked of one node. */
async function slotOwners(node: HostPort): Promise<(slot: number) => number> {
  const redis = new Redis({ ...node, lazyConnect: true, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const ranges = (await redis.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
    return (slot) => {
      const range = ranges.find(([start, end]) => slot >= start && slot <= end);
      if (!range) throw new Error(`slot ${slot} has no master`);
      return range[2][1];
    };
  } finally {
    redis.disconnect();
  }
}

/**
 * A test context whose key prefix puts the tier-change stream and the live-instance set on the
 * same shard as the job queue (the prefix is random; one in nine does), so one killed master hits
 * all three.
 */
async function contextOnShard(owner: (slot: number) => number, port: number): Promise<TestContext> {
  for (let attempt = 0; attempt < 150; attempt++) {
    const ctx = await createTestContext();
    const keys = createKeys(ctx.keyPrefix);
    if ([keys.tierChangedStream, keys.liveInstances].every((key) => owner(keySlot(key)) === port)) return ctx;
    await ctx.close();
  }
  throw new Error("no key prefix put the tier stream and the live instances on the job queue's shard in 150 draws");
}

describe.skipIf(!available.cluster)(`services through a Redis Cluster failover${skipped}`, () => {
  let cluster: RedisClusterHandle | undefined;
  let ctx: TestContext | undefined;
  let world: FailoverWorld;
  let record: SwitchRecord;
  let heldInOutbox: string[] = [];

  beforeAll(async () => {
    const handle = await timed("cluster started", () => startRedisCluster());
    cluster = handle;
    const owner = await slotOwners(handle.nodes[0]!);
    const queueKeys = createKeys("any");
    // BullMQ's keys all hash on the `{bull}` tag of the prefix, whatever the prefix.
    const switchedPort = owner(keySlot(queueKeys.clusterQueuePrefix));
    const context = await timed("test context on the queue's shard", () => contextOnShard(owner, switchedPort));
    ctx = context;
    world = await timed("services started", () =>
      startFailoverWorld(context, {
        redisEnv: handle.env,
        onSwitchedShard: (keys) => keys.every((key) => owner(keySlot(key)) === switchedPort),
      }),
    );
    const stream = world.keys.tierChangedStream;
    let killed: HostPort | undefined;
    record = await runThroughSwitch(
      world,
      async () => {
        killed = await timed("killMasterOf", () => handle.killMasterOf(stream));
      },
      {
        // ioredis learns the new slot owner at the latest at its next slots refresh (every 2 s,
        // src/shared/redis.ts) and moves its sharded subscriptions with it; a call started after
        // that and a margin runs on the new map.
        settleMs: 3000,
        trafficAfterMs: 8000,
      },
    );
    // The promoted replica has no replica of its own until the killed node is back: an event must
    // be held by a replica before billing forgets it (REDIS_WAIT_REPLICAS, 1 on a Cluster), so the
    // tier changes since the kill wait in billing's outbox rather than risk a second failover.
    heldInOutbox = await world.tiers.outboxUsers();
    // As an orchestrator restarts a dead pod: the node rejoins as the new master's replica.
    await timed("killed master restarted", () => handle.restart(killed!));
  }, 120_000);

  test("while the shard had no replica, the tier changes since the kill were held in billing's outbox", () => {
    console.log(`tier changes held in billing's outbox until the shard had a replica again: ${heldInOutbox.length}`);
    expect(heldInOutbox.length).toBeGreaterThan(0);
  });
  afterAll(async () => {
    await ctx?.close();
    await cluster?.stop();
  });

  failoverChecks(() => ({ world, record }));
});
