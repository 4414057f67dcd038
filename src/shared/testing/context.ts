import type { ServiceModule } from "../app";
import { createTokenVerifier, tokenPolicy } from "../auth/verifier";
import { type Env, loadEnv } from "../env";
import { silentLogger } from "../logger";
import { closePlatform, createPlatform, type Platform } from "../platform";
import { type RunningServer, startServer } from "../server";
import type { Tier } from "../tiers";
import { createTestDatabase, deleteKeysWithPrefix, randomSuffix, TEST_REDIS_URL, testRedisEnv } from "./infra";
import { type SignOptions, signTestToken, testKeys } from "./tokens";

export interface PlatformOverrides {
  service?: Env["SERVICE_NAME"];
  env?: Record<string, string | undefined>;
  /** false: embedded in-process adapters instead of Redis. */
  redis?: boolean;
  instanceId?: string;
}

/**
 * One test file's world: a fresh database, a unique Redis key prefix, signing keys, and every
 * platform and server it starts, all torn down by `close()` (or `await using`).
 */
export interface TestContext extends AsyncDisposable {
  databaseUrl: string;
  redisUrl: string;
  keyPrefix: string;
  envFor(overrides?: PlatformOverrides): Promise<Env>;
  platform(overrides?: PlatformOverrides): Promise<Platform>;
  /** Builds a platform, the given services on it, and serves them on a free port. */
  start(
    factories: Array<(platform: Platform) => Promise<ServiceModule>>,
    overrides?: PlatformOverrides,
  ): Promise<RunningServer & { platform: Platform; modules: ServiceModule[] }>;
  token(userId: string, tier?: Tier, options?: SignOptions): Promise<string>;
  /** Registers extra teardown (fake servers, clients); runs before platforms close. */
  defer(cleanup: () => Promise<void> | void): void;
  close(): Promise<void>;
}

/**
 * With TEST_POOLER_PORT set (test/infra/pgbouncer.test.ts runs the end-to-end tests so), services
 * reach the test database through the transaction pooler on that port and migrate over the direct
 * connection, as a deployment behind PgBouncer does.
 */
function throughPooler(directUrl: string): Record<string, string> {
  const port = process.env.TEST_POOLER_PORT;
  if (!port) return {};
  const pooled = new URL(directUrl);
  pooled.port = port;
  return { DATABASE_URL: pooled.toString(), MIGRATION_DATABASE_URL: directUrl, DATABASE_POOL_MODE: "transaction" };
}

export async function createTestContext(): Promise<TestContext> {
  const database = await createTestDatabase();
  const keyPrefix = `t:${randomSuffix()}`;
  const keys = await testKeys();
  const platforms: Platform[] = [];
  const servers: RunningServer[] = [];
  const deferred: Array<() => Promise<void> | void> = [];
  let closed = false;

  const envFor = async (overrides: PlatformOverrides = {}) =>
    loadEnv({
      SERVICE_NAME: overrides.service ?? "all",
      NODE_ENV: "test",
      LOG_LEVEL: "silent",
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url,
      ...throughPooler(database.url),
      ...(overrides.redis === false ? {} : testRedisEnv()),
      JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      MASTER_KEY_FILE: keys.masterKeyFile,
      SHUTDOWN_GRACE_MS: "2000",
      ...overrides.env,
    });

  const platform = async (overrides: PlatformOverrides = {}) => {
    const env = await envFor(overrides);
    const created = createPlatform({
      env,
      logger: silentLogger(),
      verifier: createTokenVerifier({ source: { kind: "pem", pem: keys.publicPem }, ...tokenPolicy(env) }),
      keyPrefix,
      instanceId: overrides.instanceId,
    });
    platforms.push(created);
    return created;
  };

  const context: TestContext = {
    databaseUrl: database.url,
    redisUrl: TEST_REDIS_URL,
    keyPrefix,
    envFor,
    platform,
    async start(factories, overrides) {
      const built = await platform(overrides);
      const modules: ServiceModule[] = [];
      for (const factory of factories) modules.push(await factory(built));
      const server = await startServer({ platform: built, modules, port: 0, hostname: "127.0.0.1" });
      servers.push(server);
      return { ...server, platform: built, modules };
    },
    token: (userId, tier = "free", options) => signTestToken(userId, tier, options),
    defer: (cleanup) => deferred.push(cleanup),
    async close() {
      if (closed) return;
      closed = true;
      for (const cleanup of deferred.reverse()) await cleanup();
      await Promise.all(servers.map((server) => server.stop()));
      await Promise.all(platforms.map((each) => closePlatform(each)));
      await deleteKeysWithPrefix(keyPrefix);
      await database.drop();
    },
    [Symbol.asyncDispose]: () => context.close(),
  };
  return context;
}
