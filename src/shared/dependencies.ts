import { describeDatabaseFailure } from "./db";
import { StartupError } from "./env";
import type { Platform } from "./platform";
import { describeRedisFailure, type Redis, redisTarget } from "./redis";
import { withTimeout } from "./timeout";

/** What a process waits for at start before its modules run; the names /ready reports. */
export interface Dependency {
  name: "database" | "redis";
  /** `host:port` (never credentials), or PGlite's directory. */
  target: string;
  /** Resolves once it answers; throws a StartupError for what waiting cannot fix. */
  probe(): Promise<void>;
}

/** Each failed round waits longer, up to the last step; a refused connection costs nothing to retry. */
export const BACKOFF_MS = [250, 500, 1000, 2000, 5000] as const;

const PROBE_TIMEOUT_MS = 3000;

export function dependenciesOf(platform: Platform): Dependency[] {
  const { database, redis, subscriber, env } = platform;
  const dependencies: Dependency[] = [
    {
      name: "database",
      target: database.target,
      probe: async () => {
        try {
          await database.ping(Math.max(PROBE_TIMEOUT_MS, env.DATABASE_WAIT_MS));
        } catch (error) {
          throw describeDatabaseFailure(database, error);
        }
      },
    },
  ];
  if (redis && platform.redisTopology) {
    const target = redisTarget(platform.redisTopology);
    const clients = subscriber ? [redis, subscriber] : [redis];
    dependencies.push({
      name: "redis",
      target,
      probe: async () => {
        await Promise.all(clients.map((client) => redisAnswers(client, target)));
      },
    });
  }
  return dependencies;
}

/** Waits for the client's own (re)connection attempt, or pings a ready one. */
async function redisAnswers(client: Redis, target: string): Promise<void> {
  try {
    if (client.status === "ready") {
      await withTimeout(client.ping(), PROBE_TIMEOUT_MS, "redis");
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => settle(new Error(`redis is ${client.status}`)), PROBE_TIMEOUT_MS);
      const onReady = () => settle();
      const onError = (error: unknown) => settle(error);
      // A connection accepted and closed at once (a proxy, a server starting) errs nothing.
      const onClose = () => settle(new Error("connection closed"));
      function settle(error?: unknown) {
        clearTimeout(timer);
        client.off("ready", onReady).off("error", onError).off("close", onClose);
        if (error) reject(error);
        else resolve();
      }
      client.on("ready", onReady).on("error", onError).on("close", onClose);
    });
  } catch (error) {
    throw describeRedisFailure(target, error);
  }
}

/**
 * Probes every dependency until all answer, in rounds with growing pauses; each one that does not
 * is logged at warn once per round, by name and address. A StartupError (wrong credentials, no such
 * database) ends the wait at once. Resolves false when `signal` aborts first (shutdown during start).
 */
export async function waitForDependencies(
  platform: Platform,
  dependencies: Dependency[],
  signal: AbortSignal,
): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    const results = await Promise.allSettled(dependencies.map((dependency) => dependency.probe()));
    if (signal.aborted) return false;
    const fatal = results.find((result) => result.status === "rejected" && result.reason instanceof StartupError);
    if (fatal?.status === "rejected") throw fatal.reason;
    const down = new Set<Dependency["name"]>();
    const delay = BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)] as number;
    results.forEach((result, index) => {
      const dependency = dependencies[index] as Dependency;
      if (result.status === "fulfilled") return;
      down.add(dependency.name);
      platform.logger.warn(
        {
          dependency: dependency.name,
          target: dependency.target,
          problem: (result.reason as Error).message,
          attempt,
          retry_in_ms: delay,
        },
        "waiting for a dependency",
      );
    });
    if (down.size === 0) return true;
    const aborted = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(false);
      }, delay);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(true);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    if (aborted) return false;
  }
}
