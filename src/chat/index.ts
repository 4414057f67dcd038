import type { ServiceModule } from "../shared/app";
import { migrate, withTimeout } from "../shared/db";
import type { DeviceRpc } from "../shared/device-rpc";
import { createLlm, type Llm } from "../shared/llm";
import type { Platform } from "../shared/platform";
import { type ChatEngine, chatMetrics } from "./engine";
import { MemoryService } from "./memory/memory";
import { PgMemoryStore } from "./memory/pg-store";
import { QdrantMemoryStore } from "./memory/qdrant-store";
import type { MemoryStore } from "./memory/store";
import { migrations } from "./migrations";
import { noDeviceRpc } from "./no-device-rpc";
import { MemoryQuotaCounter, RedisQuotaCounter } from "./quota";
import { CHAT_PREFIX, chatRoutes } from "./routes";
import { type ChatFrameHandler, createChatFrameHandler } from "./ws";

export { CHAT_PREFIX } from "./routes";

export interface ChatServiceOptions {
  /** The device gateway's RPC; without one the model is offered no device tools. */
  rpc?: DeviceRpc;
  llm?: Llm;
  memoryStore?: MemoryStore;
}

export interface ChatParts {
  module: ServiceModule;
  engine: ChatEngine;
  /** What the device gateway calls for `chat` and `chat_cancel` frames. */
  frames: ChatFrameHandler;
}

/** The chat service's pieces, for callers (the gateway, tests) that need more than the module. */
export async function buildChat(platform: Platform, options: ChatServiceOptions = {}): Promise<ChatParts> {
  const { env, logger } = platform;
  const llm = options.llm ?? createLlm(env, logger);
  const store =
    options.memoryStore ??
    (env.QDRANT_URL
      ? new QdrantMemoryStore({ url: env.QDRANT_URL, apiKey: env.QDRANT_API_KEY, collection: env.QDRANT_COLLECTION })
      : new PgMemoryStore(platform.db));
  const memory = new MemoryService(store, llm, logger, platform.metrics, {
    budgetMs: env.MEMORY_BUDGET_MS,
    maxResults: env.MEMORY_MAX_RESULTS,
    minScore: env.MEMORY_MIN_SCORE,
    dedupScore: env.MEMORY_DEDUP_SCORE,
  });
  const engine: ChatEngine = {
    db: platform.db,
    llm,
    rpc: options.rpc ?? noDeviceRpc,
    memory,
    quota: platform.redis ? new RedisQuotaCounter(platform.redis, platform.keys) : new MemoryQuotaCounter(),
    logger,
    metrics: chatMetrics(platform.metrics),
    config: {
      maxInputChars: env.CHAT_MAX_INPUT_CHARS,
      historyMessages: env.CHAT_HISTORY_MESSAGES,
      toolDeadlineMs: env.CHAT_TOOL_DEADLINE_MS,
    },
    now: () => new Date(),
  };
  const frames = createChatFrameHandler(engine);
  const module: ServiceModule = {
    name: "chat",
    prefix: CHAT_PREFIX,
    plugin: chatRoutes(platform, engine),
    async start() {
      await migrate(platform.db, "chat", migrations);
      // Memory is best-effort: a store that is down at start is retried on first use.
      await store.init().catch((error) => logger.warn({ err: error, store: store.kind }, "memory store not ready"));
    },
    async stop() {
      await frames.stop();
      await withTimeout(memory.idle(), env.SHUTDOWN_GRACE_MS, "memory extraction").catch((error) =>
        logger.warn({ err: error }, "memory extraction still running at shutdown"),
      );
    },
  };
  return { module, engine, frames };
}

/** Builds the chat service from its dependencies; no globals. */
export async function createChatService(platform: Platform, options: ChatServiceOptions = {}): Promise<ServiceModule> {
  return (await buildChat(platform, options)).module;
}
