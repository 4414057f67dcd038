import type { Unsubscribe } from "../../shared/bus/bus";
import type { Logger } from "../../shared/logger";
import type { Platform } from "../../shared/platform";
import {
  type InstalledLocalPlugin,
  type InstalledRemotePlugin,
  openPluginToolsQueue,
  PluginToolsReply,
} from "../../shared/plugin-tools";
import { createQueueRequester, type RequestOutcome } from "../../shared/queue-request";
import { TIERS, type Tier } from "../../shared/tiers";
import { withTimeout } from "../../shared/timeout";

/** A user's installed, paid-up plugins, as the plugins service named them. */
export interface InstalledPlugins {
  /** MCP servers the chat agent calls. */
  remote: InstalledRemotePlugin[];
  /** Packages the desktop app runs itself (the `plugins` frame). */
  local: InstalledLocalPlugin[];
}

export interface PluginLookup {
  /**
   * The user's plugins for their verified tier (the plugins service leaves out those whose
   * installed version is not for it); undefined when the plugins service did not answer in time,
   * answered with a failure, or is known to be away (then the lookup goes on in the background, see below).
   */
  installed(userId: string, tier: Tier): Promise<InstalledPlugins | undefined>;
  /** Called with a user id once that user's plugins changed and this instance forgot what it knew of them. */
  onChanged(listener: (userId: string) => void): () => void;
  /** Follows `pluginsChanged` for every user. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface PluginLookupOptions {
  /** Longest wait for an answer (CHAT_PLUGIN_LOOKUP_MS). */
  timeoutMs: number;
  /** How long an answer is reused without asking again; a `pluginsChanged` forgets it at once. */
  cacheMs?: number;
}

/** An answer is reused this long: `pluginsChanged` is the fast path, this bounds a change whose message was lost. */
const DEFAULT_CACHE_MS = 60_000;
/** Longest a close waits for Redis to take its unsubscribes. */
const UNSUBSCRIBE_WAIT_MS = 250;
/** Answers kept at most (one per user and tier); past it the expired ones go, then the oldest. */
const MAX_CACHED = 10_000;

/** What an answer is kept under: the user and the tier it was asked for, since the answer depends on both. */
const cacheKey = (userId: string, tier: Tier) => `${tier}:${userId}`;

type Outcome = RequestOutcome<PluginToolsReply>;

interface Lookup {
  promise: Promise<InstalledPlugins | undefined>;
  /** The user's plugins changed while it ran: its answer may predate the change, so it is not kept. */
  stale: boolean;
}

/**
 * The chat side of the plugin lookup (src/shared/plugin-tools.ts): a question to any plugins
 * replica over the internal queue (src/shared/queue-request.ts), as document search asks storage.
 *
 * Answers are kept per user and tier for a short while and forgotten on `pluginsChanged`, so a
 * user's turns do not each make a round trip; a turn with another tier (the user's plan changed)
 * never gets the answer given for the old one. Concurrent lookups of one user and tier share one job.
 *
 * While no plugins replica answers (none deployed, or all down), turns must not each wait out the
 * deadline: after one lookup went unanswered this instance stops waiting, and lookups go on in the
 * background, one at a time, until one is answered; its answer is kept for its user and the next
 * lookups wait again.
 */
export function createPluginLookup(platform: Platform, logger: Logger, options: PluginLookupOptions): PluginLookup {
  const { keys, bus } = platform;
  const cacheMs = options.cacheMs ?? DEFAULT_CACHE_MS;
  const requests = createQueueRequester({
    platform,
    queue: openPluginToolsQueue(platform),
    replyChannel: keys.pluginToolsReplies(platform.instanceId),
    replySchema: PluginToolsReply,
    timeoutMs: options.timeoutMs,
  });
  const cache = new Map<string, { plugins: InstalledPlugins; expiresAt: number }>();
  const running = new Map<string, Lookup>();
  const listeners = new Set<(userId: string) => void>();
  let answering = true;
  let probing = false;
  let closed = false;
  let changes: Unsubscribe | undefined;

  function remember(key: string, plugins: InstalledPlugins): void {
    const now = Date.now();
    if (cache.size >= MAX_CACHED) {
      for (const [kept, entry] of cache) if (entry.expiresAt <= now) cache.delete(kept);
      const oldest = cache.keys().next();
      if (cache.size >= MAX_CACHED && !oldest.done) cache.delete(oldest.value);
    }
    cache.set(key, { plugins, expiresAt: now + cacheMs });
  }

  function settle(userId: string, key: string, lookup: Lookup, asked: Outcome): InstalledPlugins | undefined {
    if (running.get(key) === lookup) running.delete(key);
    if (closed) return undefined;
    // An answer that is a failure (the plugins service could not read its database, say) counts as one.
    const outcome: Outcome =
      asked.kind === "answered" && asked.reply.error ? { kind: "failed", reason: asked.reply.error } : asked;
    if (outcome.kind === "answered") {
      if (!answering) logger.info("the plugins service answers again; turns get plugin tools");
      answering = true;
      const plugins = { remote: outcome.reply.plugins ?? [], local: outcome.reply.local ?? [] };
      if (!lookup.stale) remember(key, plugins);
      return plugins;
    }
    if (outcome.kind === "unanswered") {
      if (answering) {
        logger.warn(
          { timeout_ms: options.timeoutMs },
          "the plugins service did not answer; turns go on without plugin tools until it does",
        );
      }
      answering = false;
    } else {
      logger.warn({ user_id: userId, reason: outcome.reason }, "plugin lookup failed; this turn has no plugin tools");
    }
    return undefined;
  }

  function lookUp(userId: string, tier: Tier): Lookup {
    const key = cacheKey(userId, tier);
    const lookup: Lookup = { stale: false, promise: Promise.resolve(undefined) };
    lookup.promise = requests.ask({ userId, tier }).then(
      (outcome) => settle(userId, key, lookup, outcome),
      (error: Error) => settle(userId, key, lookup, { kind: "failed", reason: error.message }),
    );
    running.set(key, lookup);
    return lookup;
  }

  /** Forgets what is known of the user's plugins, for every tier: a lookup running now is not kept either. */
  function forget(userId: string): void {
    for (const tier of TIERS) {
      const key = cacheKey(userId, tier);
      cache.delete(key);
      const lookup = running.get(key);
      if (lookup) {
        lookup.stale = true;
        running.delete(key);
      }
    }
  }

  return {
    async installed(userId, tier) {
      if (closed) return undefined;
      const key = cacheKey(userId, tier);
      const cached = cache.get(key);
      if (cached && cached.expiresAt > Date.now()) return cached.plugins;
      if (answering) return (running.get(key) ?? lookUp(userId, tier)).promise;
      // Known to be away: ask in the background, one lookup at a time, and answer now without plugins.
      if (!probing && !running.has(key)) {
        probing = true;
        void lookUp(userId, tier).promise.finally(() => {
          probing = false;
        });
      }
      return undefined;
    },
    onChanged(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      const prefix = keys.pluginsChanged("");
      changes = await bus.psubscribe(keys.pluginsChangedPattern, (_message, channel) => {
        const userId = channel.slice(prefix.length);
        forget(userId);
        for (const listener of listeners) {
          try {
            listener(userId);
          } catch (error) {
            logger.warn({ err: error }, "plugin change listener failed");
          }
        }
      });
    },
    async close() {
      closed = true;
      cache.clear();
      // Bounded: while Redis reconnects an unsubscribe waits for it, and the subscriptions go with
      // the platform's connection when it closes anyway.
      await withTimeout(Promise.resolve(changes?.()), UNSUBSCRIBE_WAIT_MS, "plugin lookup unsubscribe").catch(() => {});
      await requests.close().catch((error) => logger.warn({ err: error }, "plugin lookup queue did not close"));
    },
  };
}
