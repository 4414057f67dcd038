import type { Platform } from "../platform";
import type { EventLog } from "./event-log";
import { MemoryEventLog } from "./memory-event-log";
import { RedisEventLog } from "./redis-event-log";

const logs = new WeakMap<Platform, EventLog>();

/** The platform's event log, built once: Redis Streams, or in-process in embedded mode (shared by every service of the process). */
export function eventLogFor(platform: Platform): EventLog {
  let log = logs.get(platform);
  if (!log) {
    log = platform.redis ? new RedisEventLog(platform.redis, platform.logger) : new MemoryEventLog();
    logs.set(platform, log);
  }
  return log;
}
