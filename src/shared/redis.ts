import { Redis } from "ioredis";
import { StartupError } from "./env";
import { networkProblem } from "./errors";
import type { Logger } from "./logger";
import { withTimeout } from "./timeout";

export type { Redis };

export interface RedisOptions {
  url: string;
  logger: Logger;
  /** Shown in CLIENT LIST, handy when several connections belong to one instance. */
  name: string;
}

/**
 * A Redis connection that never crashes the process: errors are logged, commands fail fast
 * while disconnected (no unbounded offline queue), and it reconnects with capped backoff.
 * A subscriber needs a connection of its own; ioredis re-subscribes its channels after a reconnect.
 */
export function openRedis(options: RedisOptions): Redis {
  const client = new Redis(options.url, {
    connectionName: options.name,
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    commandTimeout: 5000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    reconnectOnError: () => true,
  });
  let lastLogged = 0;
  client.on("error", (error) => {
    // A down Redis reports on every retry; one line a few seconds is enough.
    const now = Date.now();
    if (now - lastLogged > 5000) {
      lastLogged = now;
      options.logger.warn({ err: error.message, connection: options.name }, "redis connection error");
    }
  });
  return client;
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

/** `host:port` of a Redis URL, for messages (never the credentials). */
export function redisTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || 6379}`;
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
