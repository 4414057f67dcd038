// One pub/sub client for the echo floor: Bun's RedisClient or ioredis, two connections each
// (commands, subscriptions), on the benchmark's one Redis node.
import { RedisClient } from "bun";
import { Redis } from "ioredis";
import { REDIS_URL } from "./shared";

export interface FloorClient {
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, handler: (message: string) => void): Promise<unknown>;
  close(): void;
}

export async function floorClient(kind: "bun" | "ioredis"): Promise<FloorClient> {
  if (kind === "bun") {
    const publisher = new RedisClient(REDIS_URL);
    const subscriber = new RedisClient(REDIS_URL);
    await Promise.all([publisher.connect(), subscriber.connect()]);
    return {
      publish: (channel, message) => publisher.publish(channel, message),
      subscribe: (channel, handler) => subscriber.subscribe(channel, (message) => handler(message)),
      close() {
        publisher.close();
        subscriber.close();
      },
    };
  }
  const publisher = new Redis(REDIS_URL);
  const subscriber = new Redis(REDIS_URL);
  const handlers: Array<(message: string) => void> = [];
  subscriber.on("message", (_channel: string, message: string) => {
    for (const handler of handlers) handler(message);
  });
  return {
    publish: (channel, message) => publisher.publish(channel, message),
    async subscribe(channel, handler) {
      handlers.push(handler);
      await subscriber.subscribe(channel);
    },
    close() {
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
