import { isCluster, type Redis, sendBeside } from "../redis";
import type { Bus, BusHandler, Unsubscribe } from "./bus";
import { addChannelHandler } from "./channel-handlers";

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
    if (!isCluster(this.publisher)) return this.publisher.publish(channel, message);
    // PUBLISH names no key, so a Cluster client would send each one to any node, and two messages
    // of one channel could overtake each other on their way to the subscribers. Sent to the master
    // of the channel's slot, a channel's messages leave from one node, in order, on the same
    // connection as the commands for keys of that slot (a turn's XADD, then its live chunk).
    return sendBeside<number>(this.publisher, channel, "publish", [channel, message]);
  }

  async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    return addChannelHandler(
      this.channels,
      channel,
      handler,
      (name) => this.subscriber.subscribe(name),
      (name) => this.subscriber.unsubscribe(name),
    );
  }

  async psubscribe(pattern: string, handler: BusHandler): Promise<Unsubscribe> {
    return addChannelHandler(
      this.patterns,
      pattern,
      handler,
      (name) => this.subscriber.psubscribe(name),
      (name) => this.subscriber.punsubscribe(name),
    );
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.patterns.clear();
  }
}
