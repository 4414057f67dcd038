import type { Database } from "../shared/db";
import type { DeviceRpc } from "../shared/device-rpc";
import type { Llm } from "../shared/llm";
import type { Logger } from "../shared/logger";
import type { Metrics } from "../shared/metrics";
import type { DocumentSearch } from "./agent/documents";
import type { ChatPlugins } from "./agent/plugins";
import type { MemoryService } from "./memory/memory";
import type { QuotaCounter } from "./quota";
import type { ReplyStore } from "./reply-store";

export interface ChatConfig {
  maxInputChars: number;
  historyMessages: number;
  toolDeadlineMs: number;
}

/** Everything a chat turn needs, transport-independent: REST and WebSocket both go through it. */
export interface ChatEngine {
  db: Database;
  llm: Llm;
  rpc: DeviceRpc;
  memory: MemoryService;
  quota: QuotaCounter;
  /** Stores finished turns, holding them through a database outage until they land. */
  replies: ReplyStore;
  logger: Logger;
  metrics: ChatMetrics;
  config: ChatConfig;
  /** The `documents_search` tool's way to the storage service; absent: the agent has no such tool. */
  documents?: DocumentSearch;
  /** The user's plugin tools, looked up from the plugins service; absent: the agent has none. */
  plugins?: ChatPlugins;
  now(): Date;
}

export function chatMetrics(metrics: Metrics) {
  return {
    turns: metrics.counter("chat_turns_total", "Chat turns by surface and outcome", ["surface", "outcome"]),
    tokens: metrics.counter("chat_tokens_total", "LLM tokens used by chat turns", ["kind"]),
    toolCalls: metrics.counter("chat_tool_calls_total", "Device tool calls made by the chat agent", [
      "tool",
      "outcome",
    ]),
    pluginCalls: metrics.counter("chat_plugin_calls_total", "Plugin tool calls made by the chat agent, by outcome", [
      "outcome",
    ]),
    firstChunk: metrics.histogram(
      "chat_first_text_seconds",
      "Time from a chat request to its first text chunk",
      [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
  };
}
export type ChatMetrics = ReturnType<typeof chatMetrics>;
