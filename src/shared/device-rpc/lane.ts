import { RedisClient } from "bun";
import type { Cluster } from "ioredis";
import type { Bus, BusHandler, Unsubscribe } from "../bus/bus";
import { addChannelHandler } from "../bus/channel-handlers";
import { RedisBus } from "../bus/redis-bus";
import type { Logger } from "../logger";
import type { Platform } from "../platform";
import { openRedis, type Redis, type RedisCredentials, type RedisTopology } from "../redis";
import { keySlot } from "../redis-slot";

/**
 * The pub/sub the device RPC's hot path runs on: call hand-over to an owner's inbox, results and
 * cancels back. On one Redis node it is Bun's built-in client (native RESP parsing, pipelining of
 * everything sent in one tick), which measured a far shorter latency tail than ioredis on the
 * same Redis; Bun's client knows neither Sentinel nor Cluster, so those run on ioredis, a Cluster
 * with sharded pub/sub (`ShardedLane`). In embedded mode it is the platform's in-process bus.
 * All pass `test/shared/device-rpc-lane.contract.test.ts`.
 */
export type RpcLane = Pick<Bus, "publish" | "subscribe" | "close">;

const lanes = new WeakMap<Platform, RpcLane>();

/** The platform's lane, shared by every RPC endpoint of the process and closed with the platform. */
export function laneFor(platform: Platform): RpcLane {
  const { redisTopology, logger, env, instanceId } = platform;
  if (!redisTopology) return platform.bus;
  let lane = lanes.get(platform);
  if (!lane) {
    const opened = openLane(redisTopology, logger, `${env.SERVICE_NAME}:${instanceId}:rpc`);
    platform.cleanups.push(() => opened.close());
    lanes.set(platform, opened);
    lane = opened;
  }
  return lane;
}

/** The lane for a topology: Bun's client on one node, ioredis on Sentinel, sharded pub/sub on a Cluster. */
export function openLane(topology: RedisTopology, logger: Logger, name = "rpc"): RpcLane {
  switch (topology.kind) {
    case "single":
      return new RedisLane(topology.url, logger);
    case "sentinel":
      return new FollowingLane(topology, logger, name);
    case "cluster":
      return new ShardedLane(topology, logger, name);
  }
}

/**
 * Sentinel: ioredis follows the master Sentinel names and re-subscribes after every switch; the
 * instance bus's code does the rest. Calls in flight at a switch fail at their deadline or with
 * `rpc_unavailable` (a publish refused while reconnecting), never silently twice.
 */
class FollowingLane implements RpcLane {
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly bus: RedisBus;

  constructor(topology: RedisTopology, logger: Logger, name: string) {
    this.commands = openRedis({ topology, logger, name: `${name}:cmd` });
    this.subscriber = openRedis({ topology, logger, name: `${name}:sub` });
    this.bus = new RedisBus(this.commands, this.subscriber);
  }

  publish(channel: string, message: string): Promise<number> {
    return this.bus.publish(channel, message);
  }

  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    return this.bus.subscribe(channel, handler);
  }

  async close(): Promise<void> {
    await this.bus.close();
    this.subscriber.disconnect();
    this.commands.disconnect();
  }
}

/**
 * Cluster: sharded pub/sub. SPUBLISH goes to the master owning the channel's slot and reaches only
 * the subscribers connected to that shard, so each instance's inbox (a channel of its own, hashed
 * on its whole name) loads one shard rather than every node of the cluster as plain PUBLISH does.
 * ioredis keeps one SSUBSCRIBE connection per master and moves subscriptions when slots move.
 */
class ShardedLane implements RpcLane {
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly channels = new Map<string, Set<BusHandler>>();
  private readonly publishers = new Map<string, RedisClient>();
  private readonly credentials: RedisCredentials;
  private closed = false;

  constructor(topology: RedisTopology & { kind: "cluster" }, logger: Logger, name: string) {
    this.credentials = topology.credentials;
    this.commands = openRedis({ topology, logger, name: `${name}:cmd`, autoPipelining: true });
    this.subscriber = openRedis({ topology, logger, name: `${name}:sub`, shardedSubscribers: true });
    this.subscriber.on("smessage", (channel: string, message: string) => {
      const handlers = this.channels.get(channel);
      if (handlers) for (const handler of handlers) handler(message, channel);
    });
  }

  /**
   * SPUBLISH straight to the master of the channel's slot on Bun's client, which costs about half
   * of what ioredis does per publish (bench/RESULTS.md, the echo floors); the slot map is ioredis's
   * own, kept current by its refreshes. Without a map entry or a connected client yet, or when the
   * slot has moved (MOVED: nothing was published), the publish goes the ioredis way, which follows
   * the redirection and refreshes the map. A lost connection fails the publish, as on one node.
   */
  publish(channel: string, message: string): Promise<number> {
    const node = (this.commands as Cluster).slots[keySlot(channel)]?.[0];
    const client = node === undefined ? undefined : this.publisherFor(node);
    if (!client?.connected) return this.publishThroughCluster(channel, message);
    return client.send("SPUBLISH", [channel, message]).then(
      (receivers) => receivers as number,
      (error: Error) => {
        if (/^MOVED\b/.test(error.message)) return this.publishThroughCluster(channel, message);
        throw error;
      },
    );
  }

  private publishThroughCluster(channel: string, message: string): Promise<number> {
    return this.commands.spublish(channel, message) as Promise<number>;
  }

  /** One Bun client per master, opened on first use; until it is connected, ioredis publishes. */
  private publisherFor(node: string): RedisClient | undefined {
    let client = this.publishers.get(node);
    if (!client && !this.closed) {
      const [host, port] = [node.slice(0, node.lastIndexOf(":")), node.slice(node.lastIndexOf(":") + 1)];
      const { username, password, tls } = this.credentials;
      const auth =
        password === undefined ? "" : `${encodeURIComponent(username ?? "")}:${encodeURIComponent(password)}@`;
      const opened = new RedisClient(`${tls ? "rediss" : "redis"}://${auth}${host}:${port}`, {
        enableOfflineQueue: false,
        autoReconnect: true,
        connectionTimeout: 3000,
      });
      opened.connect().catch(() => {});
      // A failed-over master closes; a later publish for its slots finds the new master in the map.
      opened.onclose = () => {
        if (this.publishers.get(node) === opened) this.publishers.delete(node);
        opened.close();
      };
      this.publishers.set(node, opened);
      client = opened;
    }
    return client;
  }

  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    return addChannelHandler(
      this.channels,
      channel,
      handler,
      (name) => this.subscriber.ssubscribe(name),
      (name) => this.subscriber.sunsubscribe(name),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    for (const client of this.publishers.values()) client.close();
    this.publishers.clear();
    this.subscriber.disconnect();
    this.commands.disconnect();
  }
}

/**
 * Two connections: commands and subscriptions. Commands fail at once while disconnected (no
 * offline queue), so callers see `rpc_unavailable` rather than a wait. Bun's client reconnects on
 * its own but does not restore subscriptions: the lane does, after every (re)connect.
 */
export class RedisLane implements RpcLane {
  private readonly channels = new Map<string, Set<BusHandler>>();
  private readonly commands: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly ready: Promise<unknown>;
  /** Subscriber operations run one at a time, so a channel never gets our listener twice. */
  private queue: Promise<unknown> = Promise.resolve();
  private connectedOnce = false;
  /** Until the first connection, commands wait for it; after that, an outage fails them at once. */
  private connected = false;
  private closed = false;
  private lastLogged = 0;

  constructor(
    url: string,
    private readonly logger: Logger,
  ) {
    const options = { enableOfflineQueue: false, autoReconnect: true, maxRetries: 1_000_000, connectionTimeout: 3000 };
    this.commands = new RedisClient(url, options);
    this.subscriber = new RedisClient(url, options);
    this.commands.onclose = (error) => this.lost(this.commands, error);
    this.subscriber.onclose = (error) => this.lost(this.subscriber, error);
    this.subscriber.onconnect = () => {
      if (this.connectedOnce) this.serial(() => this.restoreSubscriptions());
      this.connectedOnce = true;
    };
    this.ready = Promise.all([this.commands.connect(), this.subscriber.connect()]).then(
      () => {
        this.connected = true;
      },
      (error: Error) => this.warn(error),
    );
  }

  publish(channel: string, message: string): Promise<number> {
    if (!this.connected) return this.ready.then(() => this.commands.publish(channel, message));
    return this.commands.publish(channel, message);
  }

  async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    await this.ready;
    return addChannelHandler(
      this.channels,
      channel,
      handler,
      (name) => this.serial(() => this.subscriber.subscribe(name, this.deliver)),
      (name) => this.serial(() => this.subscriber.unsubscribe(name)),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.commands.close();
    this.subscriber.close();
  }

  private readonly deliver = (message: string, channel: string) => {
    const handlers = this.channels.get(channel);
    if (handlers) for (const handler of handlers) handler(message, channel);
  };

  private serial<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.queue.then(operation, operation);
    this.queue = run.catch(() => {});
    return run;
  }

  /** The server forgot our channels; dropping the client's own record first avoids a second listener. */
  private async restoreSubscriptions(): Promise<void> {
    for (const channel of this.channels.keys()) {
      try {
        await this.subscriber.unsubscribe(channel);
        if (this.channels.has(channel)) await this.subscriber.subscribe(channel, this.deliver);
      } catch (error) {
        this.warn(error as Error);
      }
    }
  }

  /** Bun gives up after `maxRetries`; an outage longer than that must not end the lane. */
  private lost(client: RedisClient, error: Error): void {
    if (this.closed) return;
    this.warn(error);
    setTimeout(() => {
      if (!this.closed && !client.connected) client.connect().catch((next: Error) => this.lost(client, next));
    }, 1000);
  }

  private warn(error: Error): void {
    const now = Date.now();
    if (now - this.lastLogged < 5000) return;
    this.lastLogged = now;
    this.logger.warn({ err: error?.message }, "device rpc redis connection error");
  }
}
