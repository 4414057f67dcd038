import type { LanguageModel } from "ai";
import type { Bus } from "../shared/bus/bus";
import type { Database } from "../shared/db";
import type { DevicePush, DeviceRpc } from "../shared/device-rpc";
import type { JobQueue } from "../shared/jobs";
import type { Keys } from "../shared/keys";
import type { Logger } from "../shared/logger";
import type { Metrics } from "../shared/metrics";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { RunJob } from "./model";

export interface AgentModels {
  /** Cheap and fast: one call per file to decide whether it holds anything. */
  classify: LanguageModel;
  /** Extraction and setup conversations. */
  extract: LanguageModel;
}

export interface AgentSettings {
  /** Runs one replica works on at once. */
  workerConcurrency: number;
  /** Files one run processes at once. */
  itemConcurrency: number;
  /** How long a run waits, paused, for its device to come back before failing. */
  deviceGraceMs: number;
  /** Deadline of one device tool call. */
  deviceCallMs: number;
}

/** What the agent service's routes, verbs and runner need; built once in `createAgentService`. */
export interface AgentContext {
  platform: Platform;
  db: Database;
  keys: Keys;
  bus: Bus;
  logger: Logger;
  metrics: Metrics;
  instanceId: string;
  queue: JobQueue<RunJob>;
  rpc: DeviceRpc;
  push: DevicePush;
  models: AgentModels;
  settings: AgentSettings;
  /** The per-tier limits of the routes and relayed journey turns; undefined: the platform's. */
  limiter?: RateLimiter;
}
