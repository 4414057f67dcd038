import type { Redis } from "ioredis";
import type { Bus, BusHandler, Unsubscribe } from "./bus";

/**
 * Redis pub/sub with one subscriber connection for the whole instance: each channel is
 * SUBSCRIBEd once however many handlers it has, and ioredis restores subscriptions on reconnect.
 */
export class RedisBus implements Bus {
  private readonly channels = new Map<string, Set<BusHandler>>();
  private readonly patterns = new Map<string, Set<BusHandler>>();

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
  ) {
    subscriber.on("message", (channel: string, message: string) => {
      for (const handler of this.channels.get(channel) ?? []) handler(message, channel);
    });
    subscriber.on("pmessage", (pattern: string, channel: string, message: string) => {
      for (const handler of this.patterns.get(pattern) ?? []) handler(message, channel);
    });
  }

  publish(channel: string, message: string): Promise<number> {
    return this.publisher.publish(channel, message);
  }

  async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    return this.add(
      this.channels,
      channel,
      handler,
      (name) => this.subscriber.subscribe(name),
      (name) => this.subscriber.unsubscribe(name),
    );
  }

  async psubscribe(pattern: string, handler: BusHandler): Promise<Unsubscribe> {
    return this.add(
      this.patterns,
      pattern,
      handler,
      (name) => this.subscriber.psubscribe(name),
      (name) => this.subscriber.punsubscribe(name),
    );
  }

  private async add(
    registry: Map<string, Set<BusHandler>>,
    name: string,
    handler: BusHandler,
    open: (name: string) => Promise<unknown>,
    shut: (name: string) => Promise<unknown>,
  ): Promise<Unsubscribe> {
    let set = registry.get(name);
    if (!set) {
      set = new Set();
      registry.set(name, set);
      await open(name);
    }
    set.add(handler);
    const handlers = set;
    return async () => {
      handlers.delete(handler);
      if (handlers.size === 0 && registry.get(name) === handlers) {
        registry.delete(name);
        await shut(name).catch(() => {});
      }
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.patterns.clear();
  }
}
