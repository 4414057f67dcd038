import { type LegacyTokenWindow, legacyTokenWindowFromEnv, withLegacyTokens } from "./auth/legacy-tokens";
import { databaseLedger } from "./auth/revocation-ledger";
import { SessionRevocations, withRevocations } from "./auth/revocations";
import type { TokenVerifier } from "./auth/verifier";
import { DEFAULT_CLOCK_TOLERANCE_S } from "./auth/verifier";
import type { Bus } from "./bus/bus";
import { MemoryBus } from "./bus/memory-bus";
import { RedisBus } from "./bus/redis-bus";
import { type Database, type DatabaseHandle, openDatabase } from "./db";
import type { Env } from "./env";
import { createKeys, type Keys } from "./keys";
import type { Logger } from "./logger";
import { Metrics } from "./metrics";
import { openRedis, type Redis, type RedisTopology, redisTopologyOf } from "./redis";

/**
 * Everything a service needs from the outside world, built once per process (or per test) and
 * passed in. Services never read process.env or open connections of their own.
 */
export interface Platform {
  env: Env;
  instanceId: string;
  logger: Logger;
  metrics: Metrics;
  database: DatabaseHandle;
  db: Database;
  /** Absent in embedded mode: ports fall back to their in-process adapters. */
  redis?: Redis;
  /** Where `redis` connects; other Redis users of the process (jobs, the RPC lane) open theirs on it. */
  redisTopology?: RedisTopology;
  /** A second connection for SUBSCRIBE, which cannot share one with commands. */
  subscriber?: Redis;
  bus: Bus;
  keys: Keys;
  /** Checks signature, claims and that the token's session has not been revoked. */
  verifier: TokenVerifier;
  /**
   * The monolith's HS256 tokens, while LEGACY_JWT_SECRET_FILE and LEGACY_JWT_UNTIL say so: already
   * part of `verifier`; a service that builds a verifier of its own (auth) wraps it with this too.
   */
  legacyTokens?: LegacyTokenWindow;
  revocations: SessionRevocations;
  /** Cleanups run in reverse order by `closePlatform`. */
  cleanups: Array<() => Promise<void> | void>;
}

export interface PlatformOptions {
  env: Env;
  logger: Logger;
  verifier: TokenVerifier;
  instanceId?: string;
  keyPrefix?: string;
  metrics?: Metrics;
  database?: DatabaseHandle;
}

export function createPlatform(options: PlatformOptions): Platform {
  const { env, logger } = options;
  const instanceId = options.instanceId ?? env.INSTANCE_ID ?? crypto.randomUUID();
  const metrics = options.metrics ?? new Metrics({ defaultMetrics: env.NODE_ENV !== "test" });
  // Read their secret files, which may fail: before any connection is opened, so nothing is left behind.
  const legacyTokens = legacyTokenWindowFromEnv(env, { metrics, logger });
  const redisTopology = redisTopologyOf(env);
  const database =
    options.database ??
    openDatabase({
      url: env.DATABASE_URL,
      passwordFile: env.DATABASE_PASSWORD_FILE,
      maxConnections: env.DATABASE_POOL_MAX,
      dataDir: env.DATA_DIR,
      applicationName: `adiuva-${env.SERVICE_NAME}`,
      connectionWaitMs: env.DATABASE_WAIT_MS,
      statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
      poolMode: env.DATABASE_POOL_MODE,
    });
  const cleanups: Platform["cleanups"] = [];
  let redis: Redis | undefined;
  let subscriber: Redis | undefined;
  let bus: Bus;
  if (redisTopology) {
    redis = openRedis({ topology: redisTopology, logger, name: `${env.SERVICE_NAME}:${instanceId}:cmd` });
    subscriber = openRedis({ topology: redisTopology, logger, name: `${env.SERVICE_NAME}:${instanceId}:sub` });
    bus = new RedisBus(redis, subscriber);
  } else {
    bus = new MemoryBus();
  }
  const keys = createKeys(options.keyPrefix ?? env.REDIS_KEY_PREFIX);
  const revocations = new SessionRevocations({
    bus,
    redis,
    keys,
    logger,
    ledger: databaseLedger(database.db, (env.ACCESS_TOKEN_TTL_S + DEFAULT_CLOCK_TOLERANCE_S) * 1000),
  });
  const platform: Platform = {
    env,
    instanceId,
    logger: logger.child({ instance: instanceId }),
    metrics,
    database,
    db: database.db,
    redis,
    redisTopology,
    subscriber,
    bus,
    keys,
    verifier: withRevocations(withLegacyTokens(options.verifier, legacyTokens), revocations),
    legacyTokens,
    revocations,
    cleanups,
  };
  if (!options.database) cleanups.push(() => database.close());
  cleanups.push(async () => {
    await revocations.close();
    await bus.close();
    subscriber?.disconnect();
    // QUIT on a connection that is not ready would wait for a reconnect that may never come.
    if (redis?.status === "ready") await redis.quit().catch(() => redis?.disconnect());
    else redis?.disconnect();
  });
  return platform;
}

export async function closePlatform(platform: Platform): Promise<void> {
  for (const cleanup of platform.cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      platform.logger.warn({ err: error }, "cleanup failed");
    }
  }
}
