import type { Platform } from "../platform";
import { BullJobQueue } from "./bullmq-queue";
import { DEFAULT_JOB_QUEUE_OPTIONS, type JobQueue, type JobQueueOptions } from "./job-queue";
import { MemoryJobQueue } from "./memory-queue";

export { BullJobQueue } from "./bullmq-queue";
export * from "./job-queue";
export { MemoryJobQueue } from "./memory-queue";

/** BullMQ when the platform has Redis, the in-process queue in embedded mode. */
export function openJobQueue<T>(platform: Platform, name: string, options: Partial<JobQueueOptions> = {}): JobQueue<T> {
  const merged = { ...DEFAULT_JOB_QUEUE_OPTIONS, ...options };
  const url = platform.env.REDIS_URL;
  if (platform.redis && url) {
    return new BullJobQueue<T>({
      name,
      url,
      prefix: platform.keys.queuePrefix,
      logger: platform.logger,
      instanceId: platform.instanceId,
      options: merged,
    });
  }
  return new MemoryJobQueue<T>(name, merged, (error, jobId) =>
    platform.logger.warn({ err: error, queue: name, job_id: jobId }, "job attempt failed"),
  );
}
