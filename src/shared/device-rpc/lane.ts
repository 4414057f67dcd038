import { RedisClient } from "bun";
import type { Bus, BusHandler, Unsubscribe } from "../bus/bus";
import type { Logger } from "../logger";
import type { Platform } from "../platform";

/**
 * The pub/sub the device RPC's hot path runs on: call hand-over to an owner's inbox, results and
 * cancels back. With Redis it is Bun's built-in client (native RESP parsing, pipelining of
 * everything sent in one tick), which measured a far shorter latency tail than ioredis on the
 * same Redis; in embedded mode it is the platform's in-process bus.
 * Both pass `test/shared/device-rpc-lane.contract.test.ts`.
 */
export type RpcLane = Pick<Bus, "publish" | "subscribe" | "close">;

const lanes = new WeakMap<Platform, RpcLane>();

/** The platform's lane, shared by every RPC endpoint of the process and closed with the platform. */
export function laneFor(platform: Platform): RpcLane {
  const { env, logger } = platform;
  if (!env.REDIS_URL) return platform.bus;
  let lane = lanes.get(platform);
  if (!lane) {
    const opened = new RedisLane(env.REDIS_URL, logger);
    platform.cleanups.push(() => opened.close());
    lanes.set(platform, opened);
    lane = opened;
  }
  return lane;
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
    let handlers = this.channels.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.channels.set(channel, handlers);
      try {
        await this.serial(() => this.subscriber.subscribe(channel, this.deliver));
      } catch (error) {
        this.channels.delete(channel);
        throw error;
      }
    }
    handlers.add(handler);
    const set = handlers;
    return async () => {
      set.delete(handler);
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel);
        await this.serial(() => this.subscriber.unsubscribe(channel)).catch(() => {});
      }
    };
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
