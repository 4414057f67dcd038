import type { Platform } from "../platform";
import type { EventLog } from "./event-log";
import { MemoryEventLog } from "./memory-event-log";
import { RedisEventLog } from "./redis-event-log";

const logs = new WeakMap<Platform, EventLog>();

/** REDIS_WAIT_REPLICAS, else 1 where Redis has replicas to fail over to (Sentinel, Cluster), 0 on one node. */
const replicasToWaitFor = ({ env, redisTopology }: Platform): number =>
  env.REDIS_WAIT_REPLICAS ?? (redisTopology?.kind === "single" ? 0 : 1);

/** The platform's event log, built once: Redis Streams, or in-process in embedded mode (shared by every service of the process). */
export function eventLogFor(platform: Platform): EventLog {
  let log = logs.get(platform);
  if (!log) {
    log = platform.redis
      ? new RedisEventLog(platform.redis, platform.logger, { replicas: replicasToWaitFor(platform) })
      : new MemoryEventLog();
    logs.set(platform, log);
  }
  return log;
}
