import { Redis } from "ioredis";
import postgres from "postgres";

/** Where tests find PostgreSQL and Redis; CI and the README's test command use these defaults. */
export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

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

/** Deletes every key under a test's prefix (SCAN, never KEYS). */
export async function deleteKeysWithPrefix(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
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
