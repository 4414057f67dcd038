import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { DeviceRpc } from "../shared/device-rpc";
import { type JourneyQueue, openJourneyQueue } from "../shared/journey-relay";
import { createLlm, type Llm } from "../shared/llm";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import { type RateLimiter, rateLimiterFor } from "../shared/rate-limit";
import { withTimeout } from "../shared/timeout";
import type { UserDataConsumers } from "../shared/user-data";
import { createDocumentSearch } from "./agent/documents";
import { createPluginLookup, type PluginLookup } from "./agent/plugin-lookup";
import { type ChatPlugins, loadPseudonymKey } from "./agent/plugins";
import type { ChatServiceContext } from "./context";
import { deviceToolsRoute } from "./device-tools-route";
import { type ChatEngine, chatMetrics } from "./engine";
import {
  createDeviceGateway,
  createDeviceRouting,
  type DeviceGateway,
  type DeviceGatewayOptions,
  sharedChatLimiter,
} from "./gateway";
import { createJourneyRelay } from "./journey-relay";
import { MemoryService } from "./memory/memory";
import { PgMemoryStore } from "./memory/pg-store";
import { QdrantMemoryStore } from "./memory/qdrant-store";
import type { MemoryStore } from "./memory/store";
import { migrations } from "./migrations";
import { quotaCounterFor } from "./quota-for-platform";
import { ReplyStore } from "./reply-store";
import { CHAT_PREFIX, chatRoutes } from "./routes";
import { MemoryTurnLog } from "./turns/memory-turn-log";
import { RedisTurnLog } from "./turns/redis-turn-log";
import type { TurnLog } from "./turns/turn-log";
import { ChatTurns } from "./turns/turns";
import { startChatUserData } from "./user-data";
import { type ChatFrameHandler, createChatFrameHandler, gatewayChatHandlers } from "./ws";

export { CHAT_PREFIX } from "./routes";

/** The chat service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof chatRoutes>;

export interface ChatServiceOptions {
  gateway?: DeviceGatewayOptions;
  /** Replaces the gateway's device RPC for the chat agent (tests of the engine alone). */
  rpc?: DeviceRpc;
  llm?: Llm;
  memoryStore?: MemoryStore;
  /** The tier's requests/min for chat routes and `chat` frames, one budget; defaults to the platform's. */
  limiter?: RateLimiter;
  /** Where `journey_*` frames go for the agent service; defaults to the platform's journey queue. */
  journeyQueue?: JourneyQueue;
}

export interface ChatServiceModule extends ServiceModule {
  /** The device socket, device RPC and push of this instance. */
  gateway: DeviceGateway;
  /** The transport-independent chat engine behind REST and the socket's `chat` frames. */
  engine: ChatEngine;
  frames: ChatFrameHandler;
  /** The turns this instance runs and follows, resumable from any instance. */
  turns: ChatTurns;
}

/** Redis Streams when Redis is configured, in-process in embedded mode. */
function createTurnLog(platform: Platform, onAppendFailed: (error: unknown) => void): TurnLog {
  return platform.redis
    ? new RedisTurnLog(platform.redis, platform.bus, platform.keys, onAppendFailed)
    : new MemoryTurnLog();
}

function createMemory(platform: Platform, llm: Llm, store: MemoryStore | undefined): MemoryService {
  const { env } = platform;
  const chosen =
    store ??
    (env.QDRANT_URL
      ? new QdrantMemoryStore({ url: env.QDRANT_URL, apiKey: env.QDRANT_API_KEY, collection: env.QDRANT_COLLECTION })
      : new PgMemoryStore(platform.db));
  return new MemoryService(chosen, llm, platform.logger, platform.metrics, {
    budgetMs: env.MEMORY_BUDGET_MS,
    maxResults: env.MEMORY_MAX_RESULTS,
    minScore: env.MEMORY_MIN_SCORE,
    dedupScore: env.MEMORY_DEDUP_SCORE,
  });
}

/** The plugins service answers the lookup over a Redis queue (src/shared/plugin-tools.ts). */
function createPlugins(platform: Platform, lookup: PluginLookup): ChatPlugins {
  const { env } = platform;
  return {
    lookup,
    limiter: rateLimiterFor(platform),
    keys: platform.keys,
    pseudonymKey: loadPseudonymKey(env),
    strictEndpoints: env.NODE_ENV === "production",
  };
}

/** Builds the chat service from its dependencies; no globals. */
export async function createChatService(
  platform: Platform,
  options: ChatServiceOptions = {},
): Promise<ChatServiceModule> {
  const { env } = platform;
  const logger = platform.logger.child({ module: "chat" });
  // Construction order: the device routing, then what calls devices through it (the chat engine,
  // the journey relay), then the socket whose frames they handle.
  const routing = createDeviceRouting(platform);
  const llm = options.llm ?? createLlm(env, logger);
  const memory = createMemory(platform, llm, options.memoryStore);
  const pluginLookup = createPluginLookup(platform, logger, { timeoutMs: env.CHAT_PLUGIN_LOOKUP_MS });
  const engine: ChatEngine = {
    db: platform.db,
    llm,
    rpc: options.rpc ?? routing.rpc,
    memory,
    quota: quotaCounterFor(platform),
    replies: new ReplyStore(platform.db, logger, platform.metrics),
    logger,
    metrics: chatMetrics(platform.metrics),
    config: {
      maxInputChars: env.CHAT_MAX_INPUT_CHARS,
      historyMessages: env.CHAT_HISTORY_MESSAGES,
      toolDeadlineMs: env.CHAT_TOOL_DEADLINE_MS,
    },
    // The storage service answers it over a Redis queue (src/shared/document-search.ts).
    documents: createDocumentSearch(platform, logger, env.CHAT_TOOL_DEADLINE_MS),
    plugins: createPlugins(platform, pluginLookup),
    now: () => new Date(),
  };
  const appendFailures = platform.metrics.counter(
    "chat_turn_log_failures_total",
    "Chunks the turn log could not keep (followers then read around the gap)",
  );
  const turns = new ChatTurns(
    engine,
    createTurnLog(platform, (error) => {
      appendFailures.inc();
      logger.warn({ err: (error as Error).message }, "chunk not kept in the turn log");
    }),
    {
      instanceId: platform.instanceId,
      resumeTtlS: env.CHAT_RESUME_TTL_S,
      leaseMs: env.CHAT_TURN_LEASE_MS,
      maxRunning: env.CHAT_MAX_RUNNING_TURNS,
    },
    logger,
  );
  const ctx: ChatServiceContext = { platform, logger, engine, turns, limiter: options.limiter };
  const frames = createChatFrameHandler(turns, logger);
  const journeyQueue = options.journeyQueue ?? openJourneyQueue(platform);
  const journeys = createJourneyRelay({
    queue: journeyQueue,
    push: routing.push,
    timeoutMs: env.JOURNEY_QUEUE_TIMEOUT_MS,
    logger,
    metrics: platform.metrics,
  });
  const gateway = createDeviceGateway(platform, {
    ...options.gateway,
    routing,
    chat: options.gateway?.chat ?? gatewayChatHandlers(frames),
    journeys: options.gateway?.journeys ?? journeys,
    rateLimiter: options.gateway?.rateLimiter ?? sharedChatLimiter(platform, options.limiter),
    plugins: options.gateway?.plugins ?? {
      local: async (userId, tier) => (await pluginLookup.installed(userId, tier))?.local,
      onChanged: (listener) => pluginLookup.onChanged(listener),
    },
  });
  let userData: UserDataConsumers | undefined;
  return {
    name: "chat",
    prefix: CHAT_PREFIX,
    // The device socket and its tool contract live at /api/v1/ws/device, outside the chat prefix.
    plugin: new Elysia({ name: "chat-service" }).use(gateway.plugin).use(deviceToolsRoute()).use(chatRoutes(ctx)),
    gateway,
    engine,
    frames,
    turns,
    async start() {
      await migrateService(platform, "chat", migrations);
      // Memory is best-effort: a store that is down at start is retried on first use.
      await memory.store
        .init()
        .catch((error) => logger.warn({ err: error, store: memory.store.kind }, "memory store not ready"));
      // Before the gateway, whose `plugins` frames follow the changes it hears.
      await pluginLookup.start();
      await gateway.start();
      await turns.start();
      // Account deletions and data exports: after the turns, which an erasure stops.
      userData = await startChatUserData(ctx);
    },
    async stop() {
      // One grace period for everything in flight: socket turns finish in it (as HTTP ones do), and
      // turns finished during a database outage get what is left of it to land.
      const deadline = Date.now() + env.SHUTDOWN_GRACE_MS;
      await userData?.stop();
      await frames.stop(deadline);
      await engine.replies.drain(Math.max(0, deadline - Date.now()));
      journeys.stop();
      await gateway.stop();
      await journeyQueue.close();
      await engine.documents?.close();
      await pluginLookup.close();
      await withTimeout(memory.idle(), Math.max(1000, deadline - Date.now()), "memory extraction").catch((error) =>
        logger.warn({ err: error }, "memory extraction still running at shutdown"),
      );
    },
  };
}
