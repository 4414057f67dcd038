import { Redis } from "ioredis";
import postgres from "postgres";
import { silentLogger } from "../logger";
import { hostPortList, masterNodes, openRedis, type RedisTopology, redisTopology } from "../redis";

/** Where tests find PostgreSQL and Redis; CI and the README's test command use these defaults. */
export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * The Redis the tests run on: one node by default; a Sentinel group or a Cluster when
 * REDIS_SENTINELS + REDIS_SENTINEL_NAME or REDIS_CLUSTER_NODES say so (test/infra/redis-topologies.test.ts
 * runs the Redis users' tests that way).
 */
export const TEST_REDIS_TOPOLOGY: RedisTopology = redisTopology({
  REDIS_SENTINELS: process.env.REDIS_SENTINELS,
  REDIS_SENTINEL_NAME: process.env.REDIS_SENTINEL_NAME,
  REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES,
}) ?? { kind: "single", url: TEST_REDIS_URL };

/** The variables that point a service at the test topology. */
export function testRedisEnv(): Record<string, string> {
  const topology = TEST_REDIS_TOPOLOGY;
  switch (topology.kind) {
    case "single":
      return { REDIS_URL: topology.url };
    case "sentinel":
      return { REDIS_SENTINELS: hostPortList(topology.sentinels), REDIS_SENTINEL_NAME: topology.name };
    case "cluster":
      return { REDIS_CLUSTER_NODES: hostPortList(topology.nodes) };
  }
}

/** A connection to the test topology, for tests that drive an adapter directly. */
export const openTestRedis = (name: string) =>
  openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name });

export const randomSuffix = (): string => crypto.randomUUID().replace(/-/g, "").slice(0, 12);

/** A fresh, empty database for one test file; `drop` removes it even with open connections. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `adiuva_test_${randomSuffix()}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await sql.end();
      }
    },
  };
}

/** Every key matching `pattern` on the test topology (SCAN on every master, never KEYS). */
export async function scanTestKeys(pattern: string): Promise<string[]> {
  const redis = openTestRedis("test-scan");
  try {
    await redis.ping();
    const found: string[] = [];
    for (const node of masterNodes(redis)) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        found.push(...keys);
      } while (cursor !== "0");
    }
    return found.sort();
  } finally {
    redis.disconnect();
  }
}

/** Deletes every key under a test's prefix (one key per UNLINK: on a Cluster they sit in different slots). */
export async function deleteKeysWithPrefix(prefix: string): Promise<void> {
  const keys = await scanTestKeys(`${prefix}:*`);
  if (keys.length === 0) return;
  const redis = openTestRedis("test-cleanup");
  try {
    await Promise.all(keys.map((key) => redis.unlink(key)));
  } finally {
    redis.disconnect();
  }
}

/** Fails with a message saying what to start when PostgreSQL or Redis is not reachable. */
export async function assertInfrastructure(): Promise<void> {
  const problems: string[] = [];
  const sql = postgres(TEST_DATABASE_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (error) {
    problems.push(`PostgreSQL at ${redact(TEST_DATABASE_URL)}: ${(error as Error).message}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
  const redis = new Redis(TEST_REDIS_URL, {
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    connectTimeout: 3000,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    problems.push(`Redis at ${redact(TEST_REDIS_URL)}: ${(error as Error).message}`);
  } finally {
    redis.disconnect();
  }
  if (problems.length > 0) {
    throw new Error(
      `tests need a real PostgreSQL and Redis (set DATABASE_URL / REDIS_URL, or run \`bun run test\`, which starts local ones):\n  ${problems.join("\n  ")}`,
    );
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}
