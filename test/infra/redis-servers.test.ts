// The Redis Cluster and Sentinel harness (src/shared/testing/redis-servers.ts) on Debian's real
// binaries: the topologies start, ioredis clients use them, and failovers promote the replica the
// way the backend's failover tests rely on. Skipped, with its reason, where redis-server or
// redis-cli is not installed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Cluster, Redis } from "ioredis";
import { redisTopology } from "../../src/shared/redis";
import { eventually } from "../../src/shared/testing/eventually";
import {
  type HostPort,
  type RedisClusterHandle,
  type RedisSentinelHandle,
  redisBinariesAvailable,
  startRedisCluster,
  startRedisSentinel,
} from "../../src/shared/testing/redis-servers";

const available = redisBinariesAvailable();
if (!available.cluster) console.log(`skipped: ${available.reason}`);
const skippedCluster = available.cluster ? "" : ` (skipped: ${available.reason})`;
const skippedSentinel = available.sentinel ? "" : ` (skipped: ${available.reason})`;

async function timed<T>(what: string, action: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await action();
  console.log(`${what}: ${Math.round(performance.now() - started)} ms`);
  return result;
}

/** A direct connection to one node, for checking where a write landed. */
async function onNode<T>(node: HostPort, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: node.host, port: node.port, lazyConnect: true, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

const role = (node: HostPort) => onNode(node, async (redis) => ((await redis.call("ROLE")) as string[])[0]);
const reachable = (node: HostPort) =>
  onNode(node, (redis) => redis.ping()).then(
    () => true,
    () => false,
  );
const ports = (nodes: HostPort[]) => nodes.map((node) => node.port).sort();

describe.skipIf(!available.cluster)(`Redis Cluster${skippedCluster}`, () => {
  let cluster: RedisClusterHandle;
  let client: Cluster;
  const key = `harness:${crypto.randomUUID()}`;

  beforeAll(async () => {
    cluster = await timed("cluster start (6 nodes, create, all replicas synced)", () => startRedisCluster());
    client = new Cluster(cluster.nodes, {
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
      redisOptions: { maxRetriesPerRequest: 1 },
    });
    client.on("error", () => {});
  }, 30_000);
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  test("three masters and three replicas; the env names all six seeds; a key round-trips through a Cluster client", async () => {
    expect(cluster.nodes).toHaveLength(6);
    const topology = redisTopology(cluster.env);
    expect(topology?.kind === "cluster" ? ports(topology.nodes) : []).toEqual(ports(cluster.nodes));
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    const roles = await Promise.all(cluster.nodes.map(role));
    expect(roles.filter((name) => name === "master")).toHaveLength(3);
    expect(roles.filter((name) => name === "slave")).toHaveLength(3);

    await client.set(key, "before failover");
    expect(await client.get(key)).toBe("before failover");
  });

  let killed: HostPort;
  test("killing the master of a key's slot promotes its replica; the client follows and still reads and writes the key", async () => {
    const before = await cluster.masters();
    killed = await timed("cluster killMasterOf (node timeout 1000 ms)", () => cluster.killMasterOf(key));
    expect(ports(before)).toContain(killed.port);
    const after = await cluster.masters();
    expect(after).toHaveLength(3);
    expect(ports(after)).not.toContain(killed.port);
    expect(await reachable(killed)).toBe(false);

    const read = await eventually(
      () => client.get(key).catch((error: Error) => error.message),
      (value) => value === "before failover",
      10_000,
    );
    expect(read).toBe("before failover");
    await client.set(key, "after failover");
    const newMaster = after.find((node) => !ports(before).includes(node.port))!;
    expect(await onNode(newMaster, (redis) => redis.get(key))).toBe("after failover");
  }, 30_000);

  test("the killed node restarts and rejoins as a replica", async () => {
    const masters = await cluster.masters();
    await timed("cluster restart of the killed node (rejoin, full sync)", () => cluster.restart(killed));
    expect(await role(killed)).toBe("slave");
    expect(ports(await cluster.masters())).toEqual(ports(masters));
    // It holds the promoted master's data, and a second failover can promote it back.
    expect(await onNode(killed, (redis) => redis.call("READONLY").then(() => redis.get(key)))).toBe("after failover");
    const second = await timed("cluster killMasterOf again (the restarted node is promoted)", () =>
      cluster.killMasterOf(key),
    );
    expect(ports(await cluster.masters())).toContain(killed.port);
    expect(ports(await cluster.masters())).not.toContain(second.port);
  }, 30_000);

  test("stop() ends every node and is safe to call twice", async () => {
    await cluster.stop();
    await cluster.stop();
    expect(await Promise.all(cluster.nodes.map(reachable))).toEqual(cluster.nodes.map(() => false));
  });
});

describe.skipIf(!available.sentinel)(`Redis Sentinel${skippedSentinel}`, () => {
  let group: RedisSentinelHandle;
  let client: Redis;
  const key = `harness:${crypto.randomUUID()}`;

  beforeAll(async () => {
    group = await timed("sentinel start (master, replica, 3 sentinels aware of each other)", () =>
      startRedisSentinel(),
    );
    // Built before any failover: it must follow the switches the sentinels announce.
    client = new Redis({
      sentinels: group.sentinels,
      name: group.name,
      failoverDetector: true,
      maxRetriesPerRequest: 1,
    });
    client.on("error", () => {});
  }, 30_000);
  afterAll(async () => {
    client?.disconnect();
    await group?.stop();
  });

  /** Writes through the Sentinel client until the value is on `master` itself. */
  async function writesReach(master: HostPort, value: string): Promise<string | null> {
    return eventually(
      async () => {
        await client.set(key, value).catch(() => {});
        return onNode(master, (redis) => redis.get(key)).catch(() => null);
      },
      (seen) => seen === value,
      10_000,
      100,
    );
  }

  test("the sentinels name the master; the env names the three sentinels; the client writes to it", async () => {
    const topology = redisTopology(group.env);
    expect(topology?.kind === "sentinel" ? [topology.name, ports(topology.sentinels)] : []).toEqual([
      "adiuva",
      ports(group.sentinels),
    ]);
    const master = await group.master();
    expect(await role(master)).toBe("master");
    expect(await writesReach(master, "first")).toBe("first");
  });

  test("failover() switches the master and the client writes to the new one", async () => {
    const before = await group.master();
    const promoted = await timed("sentinel failover() (SENTINEL FAILOVER)", () => group.failover());
    expect(promoted.port).not.toBe(before.port);
    expect((await group.master()).port).toBe(promoted.port);
    expect(await role(promoted)).toBe("master");
    expect(await writesReach(promoted, "after failover")).toBe("after failover");
  }, 30_000);

  test("killMaster() kills the master and the sentinels promote the replica", async () => {
    const before = await group.master();
    const killed = await timed("sentinel killMaster() (incl. waiting for the demoted master to resync)", () =>
      group.killMaster(),
    );
    expect(killed.port).toBe(before.port);
    expect(await reachable(killed)).toBe(false);
    const promoted = await group.master();
    expect(promoted.port).not.toBe(killed.port);
    expect(await role(promoted)).toBe("master");
    expect(await writesReach(promoted, "after kill")).toBe("after kill");
  }, 30_000);

  test("stop() ends every process and is safe to call twice", async () => {
    const master = await group.master();
    await group.stop();
    await group.stop();
    expect(await Promise.all([master, ...group.sentinels].map(reachable))).toEqual([false, false, false, false]);
  });
});
