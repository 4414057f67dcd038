import type { Platform } from "../platform";
import { isCluster } from "../redis";
import { BullJobQueue } from "./bullmq-queue";
import { DEFAULT_JOB_QUEUE_OPTIONS, type JobQueue, type JobQueueOptions } from "./job-queue";
import { MemoryJobQueue } from "./memory-queue";

export { BullJobQueue } from "./bullmq-queue";
export * from "./job-queue";
export { MemoryJobQueue } from "./memory-queue";

/** BullMQ when the platform has Redis, the in-process queue in embedded mode. */
export function openJobQueue<T>(platform: Platform, name: string, options: Partial<JobQueueOptions> = {}): JobQueue<T> {
  const merged = { ...DEFAULT_JOB_QUEUE_OPTIONS, ...options };
  const { redis, redisTopology: topology, keys } = platform;
  if (redis && topology) {
    return new BullJobQueue<T>({
      name,
      topology,
      prefix: isCluster(redis) ? keys.clusterQueuePrefix : keys.queuePrefix,
      logger: platform.logger,
      instanceId: platform.instanceId,
      options: merged,
      closeTimeoutMs: platform.env.SHUTDOWN_GRACE_MS,
    });
  }
  return new MemoryJobQueue<T>(name, merged, (error, jobId) =>
    platform.logger.warn({ err: error, queue: name, job_id: jobId }, "job attempt failed"),
  );
}

interface SharedEntry {
  queue: JobQueue<unknown>;
  holders: number;
}
const embedded = new WeakMap<Platform, Map<string, SharedEntry>>();

/**
 * A queue one service fills and another consumes. With Redis each caller gets its own connections
 * (as `openJobQueue`); in embedded mode both services run in one process and must meet on the same
 * in-process queue, which closes when its last holder closes it.
 */
export function openSharedJobQueue<T>(
  platform: Platform,
  name: string,
  options: Partial<JobQueueOptions> = {},
): JobQueue<T> {
  if (platform.redis) return openJobQueue<T>(platform, name, options);
  const queues = embedded.get(platform) ?? new Map<string, SharedEntry>();
  embedded.set(platform, queues);
  let entry = queues.get(name);
  if (!entry) {
    entry = { queue: openJobQueue<unknown>(platform, name, options), holders: 0 };
    queues.set(name, entry);
  }
  entry.holders += 1;
  const shared = entry;
  const queue = shared.queue as JobQueue<T>;
  let closed = false;
  return {
    name,
    add: (id, data) => queue.add(id, data),
    ensure: (id, data) => queue.ensure(id, data),
    state: (id) => queue.state(id),
    process: (handler, processOptions) => queue.process(handler, processOptions),
    remove: (id) => queue.remove(id),
    counts: () => queue.counts(),
    async close() {
      if (closed) return;
      closed = true;
      shared.holders -= 1;
      if (shared.holders > 0) return;
      if (queues.get(name) === shared) queues.delete(name);
      await queue.close();
    },
  };
}
