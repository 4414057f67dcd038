import { Cluster, Command, Redis as SingleRedis } from "ioredis";
import { ConfigError, type Env, readConfigFile, StartupError } from "./env";
import { networkProblem } from "./errors";
import type { Logger } from "./logger";
import { keySlot } from "./redis-slot";
import { withTimeout } from "./timeout";

/**
 * A Redis connection of any topology: one node or a Sentinel-managed master (`Redis`), or a Redis
 * Cluster (`Cluster`). Both speak the same commands; what differs is that on a Cluster every
 * command, script, MULTI and pipeline must keep its keys in one hash slot (src/shared/keys.ts
 * hash-tags the keys that travel together).
 */
export type Redis = SingleRedis | Cluster;

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Where Redis is, from REDIS_URL (one node), REDIS_SENTINELS + REDIS_SENTINEL_NAME (a master that
 * Sentinel fails over) or REDIS_CLUSTER_NODES (a Cluster): exactly one of the three.
 */
export type RedisTopology =
  | { kind: "single"; url: string }
  | { kind: "sentinel"; sentinels: HostPort[]; name: string; credentials: RedisCredentials }
  | { kind: "cluster"; nodes: HostPort[]; credentials: RedisCredentials };

export interface RedisCredentials {
  username?: string;
  password?: string;
  /** Sentinels with a password of their own (`requirepass` in sentinel.conf). */
  sentinelPassword?: string;
  tls?: boolean;
}

export interface RedisTopologySource {
  REDIS_URL?: string;
  REDIS_SENTINELS?: string;
  REDIS_SENTINEL_NAME?: string;
  REDIS_CLUSTER_NODES?: string;
  REDIS_USERNAME?: string;
  REDIS_TLS?: boolean;
}

export interface RedisSecrets {
  password?: string;
  sentinelPassword?: string;
}

/** The configured topology; undefined when none is (embedded mode). Throws a ConfigError for a bad one. */
export function redisTopology(source: RedisTopologySource, secrets: RedisSecrets = {}): RedisTopology | undefined {
  const chosen = (["REDIS_URL", "REDIS_SENTINELS", "REDIS_CLUSTER_NODES"] as const).filter((name) => source[name]);
  if (chosen.length > 1) {
    throw new ConfigError(`invalid configuration: set only one of ${chosen.join(", ")} (one Redis topology)`);
  }
  const credentials: RedisCredentials = {
    username: source.REDIS_USERNAME,
    password: secrets.password,
    sentinelPassword: secrets.sentinelPassword,
    tls: source.REDIS_TLS,
  };
  if (source.REDIS_URL) return { kind: "single", url: withPassword(source.REDIS_URL, secrets.password) };
  if (source.REDIS_SENTINELS) {
    if (!source.REDIS_SENTINEL_NAME) {
      throw new ConfigError("invalid configuration: REDIS_SENTINEL_NAME must be set with REDIS_SENTINELS");
    }
    return {
      kind: "sentinel",
      sentinels: hostPorts("REDIS_SENTINELS", source.REDIS_SENTINELS, 26379),
      name: source.REDIS_SENTINEL_NAME,
      credentials,
    };
  }
  if (source.REDIS_CLUSTER_NODES) {
    return { kind: "cluster", nodes: hostPorts("REDIS_CLUSTER_NODES", source.REDIS_CLUSTER_NODES, 6379), credentials };
  }
  return undefined;
}

/** The platform's topology, its secrets read from their files once, at start. */
export function redisTopologyOf(env: Env): RedisTopology | undefined {
  return redisTopology(env, {
    password: env.REDIS_PASSWORD_FILE
      ? readConfigFile("REDIS_PASSWORD_FILE", env.REDIS_PASSWORD_FILE).trim()
      : undefined,
    sentinelPassword: env.REDIS_SENTINEL_PASSWORD_FILE
      ? readConfigFile("REDIS_SENTINEL_PASSWORD_FILE", env.REDIS_SENTINEL_PASSWORD_FILE).trim()
      : undefined,
  });
}

/** `host:port,host:port` (IPv6 as `[::1]:port`); the port defaults to the service's usual one. */
export function hostPorts(variable: string, list: string, defaultPort: number): HostPort[] {
  const entries = list
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new ConfigError(`invalid configuration: ${variable} lists no host`);
  return entries.map((entry) => {
    const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry);
    const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
    if (!match?.[1] || port < 1 || port > 65535) {
      throw new ConfigError(`invalid configuration: ${variable}: "${entry}" is not host:port`);
    }
    return { host: match[1].replace(/^\[|\]$/g, ""), port };
  });
}

/** The inverse of `hostPorts`: `host:port,host:port`, as REDIS_SENTINELS and REDIS_CLUSTER_NODES take it. */
export const hostPortList = (nodes: HostPort[]): string => nodes.map(({ host, port }) => `${host}:${port}`).join(",");

/** A password from REDIS_PASSWORD_FILE replaces the URL's own, as DATABASE_PASSWORD_FILE does. */
function withPassword(url: string, password: string | undefined): string {
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

export interface RedisOptions {
  topology: RedisTopology;
  logger: Logger;
  /** Shown in CLIENT LIST, handy when several connections belong to one instance. */
  name: string;
  /**
   * On a Cluster, one extra connection per master for SSUBSCRIBE (sharded pub/sub): a shard
   * channel's messages stay on the shard that owns its slot instead of reaching every node.
   */
  shardedSubscribers?: boolean;
  /**
   * `commands` (the default): one retry, then the command fails; queued while (re)connecting.
   * `producer`: fails at once while disconnected, so an enqueue is an error its caller reports.
   * `blocking`: BullMQ's worker, which blocks on its connection and waits out an outage (no retry
   * limit and no command timeout, as BullMQ requires).
   */
  policy?: "commands" | "producer" | "blocking";
  /**
   * Commands sent in one tick go out as one write per node. Only for a connection whose commands
   * never depend on an order with commands sent another way (the RPC lane's SPUBLISHes): the bus's
   * slot-routed PUBLISH bypasses the auto-pipeline and could overtake a queued command.
   */
  autoPipelining?: boolean;
}

const RETRY = (attempt: number) => Math.min(50 * 2 ** attempt, 2000);

/** Per-connection settings shared by every topology. */
function connectionOptions(name: string, policy: RedisOptions["policy"], credentials: RedisCredentials = {}) {
  return {
    connectionName: name,
    username: credentials.username,
    password: credentials.password,
    tls: credentials.tls ? {} : undefined,
    maxRetriesPerRequest: policy === "blocking" ? null : 1,
    connectTimeout: 3000,
    commandTimeout: policy === "blocking" ? undefined : 5000,
    // A failed-over master turns read-only before clients notice: reconnect and find the new one.
    reconnectOnError: (error: Error) => (/^READONLY\b/.test(error.message) ? 2 : true),
  };
}

/**
 * A Redis connection that never crashes the process: errors are logged, commands fail fast
 * while disconnected (no unbounded offline queue), and it reconnects with capped backoff.
 * A subscriber needs a connection of its own; ioredis re-subscribes its channels after a reconnect
 * (and, on Sentinel, after following a new master; on a Cluster, after a slot moves).
 */
export function openRedis(options: RedisOptions): Redis {
  const client = connect(options);
  let lastLogged = 0;
  const report = (error: Error) => {
    // A down Redis reports on every retry; one line a few seconds is enough.
    const now = Date.now();
    if (now - lastLogged > 5000) {
      lastLogged = now;
      options.logger.warn({ err: error.message, connection: options.name }, "redis connection error");
    }
  };
  client.on("error", report);
  if (client instanceof Cluster) client.on("node error", report);
  return client;
}

function connect({ topology, name, shardedSubscribers, policy, autoPipelining }: RedisOptions): Redis {
  const enableOfflineQueue = policy !== "producer";
  switch (topology.kind) {
    case "single":
      return new SingleRedis(topology.url, {
        ...connectionOptions(name, policy),
        enableOfflineQueue,
        retryStrategy: RETRY,
      });
    case "sentinel":
      return new SingleRedis({
        ...connectionOptions(name, policy, topology.credentials),
        sentinels: topology.sentinels,
        name: topology.name,
        sentinelPassword: topology.credentials.sentinelPassword,
        enableTLSForSentinelMode: topology.credentials.tls,
        enableOfflineQueue,
        retryStrategy: RETRY,
        sentinelRetryStrategy: RETRY,
        // Sentinel publishes +switch-master: follow a failover at once rather than at the next error.
        failoverDetector: true,
      });
    case "cluster":
      return new Cluster(topology.nodes, {
        redisOptions: connectionOptions(name, policy, topology.credentials),
        enableOfflineQueue,
        enableAutoPipelining: autoPipelining ?? false,
        clusterRetryStrategy: RETRY,
        // A killed master's connection must come back as a replica later without a restart.
        clusterNodeRetryStrategy: RETRY,
        // While a replica is being promoted, commands for its slots wait and retry instead of failing.
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 300,
        slotsRefreshInterval: 2000,
        shardedSubscribers: shardedSubscribers ?? false,
      });
  }
}

/**
 * False while the connection is known to be down (a fallback decides at once); true while it is
 * up or still connecting at startup (worth waiting on, bounded by the caller's timeout).
 */
export const redisAvailable = (client: Redis): boolean => !["reconnecting", "close", "end"].includes(client.status);

export async function pingRedis(client: Redis, timeoutMs = 2000): Promise<void> {
  if (client.status !== "ready") throw new Error(`redis is ${client.status}`);
  await withTimeout(client.ping(), timeoutMs, "redis");
}

/** Where Redis is, for messages (never the credentials). */
export function redisTarget(topology: RedisTopology): string {
  switch (topology.kind) {
    case "single": {
      const parsed = new URL(topology.url);
      return `${parsed.hostname}:${parsed.port || 6379}`;
    }
    case "sentinel":
      return `sentinel ${topology.name} via ${hostPortList(topology.sentinels)}`;
    case "cluster":
      return `cluster ${hostPortList(topology.nodes)}`;
  }
}

/**
 * Why Redis did not answer, in one line naming it: a StartupError for refused credentials (waiting
 * cannot fix them), a plain Error otherwise.
 */
export function describeRedisFailure(target: string, error: unknown): Error {
  const { code, message = "" } = error as { code?: string; message?: string };
  if (/^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i.test(message)) {
    return new StartupError(`Redis at ${target} refused the credentials`);
  }
  return new Error(`Redis at ${target} ${networkProblem(code) ?? "is unreachable"}`);
}

/**
 * Each master of a Cluster, or the one node: where a SCAN must run to see every key, and where
 * PUBSUB SHARDNUMSUB answers for the shards.
 */
export function masterNodes(client: Redis): SingleRedis[] {
  return client instanceof Cluster ? client.nodes("master") : [client];
}

export const isCluster = (client: Redis): client is Cluster => client instanceof Cluster;

/**
 * Sends a command that names no key (PUBLISH, WAIT) where `key` lives: on a Cluster, to the
 * master of its slot, on the connection that carries that slot's commands, so it follows them in
 * order; elsewhere, on the one connection.
 */
export function sendBeside<T>(client: Redis, key: string, name: string, args: Array<string | number>): Promise<T> {
  const command = new Command(name, args, { replyEncoding: "utf8" });
  if (isCluster(client)) client.sendCommand(command, undefined, { slot: keySlot(key) });
  else client.sendCommand(command);
  return command.promise as Promise<T>;
}

/**
 * How many replicas acknowledged every write sent before on `key`'s connection, waiting at most
 * `timeoutMs` for `replicas` of them (WAIT). A write a master acknowledged and then lost in a
 * failover had not reached its replica: asking is how a producer knows it may forget the write.
 */
export const replicasAcknowledging = (client: Redis, key: string, replicas: number, timeoutMs: number) =>
  sendBeside<number>(client, key, "wait", [replicas, timeoutMs]);
