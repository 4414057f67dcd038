import { type Job as BullJob, Queue, WaitingError, Worker } from "bullmq";
import type { Logger } from "../logger";
import { openRedis, type Redis, type RedisTopology } from "../redis";
import { withTimeout } from "../timeout";
import {
  type Job,
  type JobHandler,
  JobInterrupted,
  type JobQueue,
  type JobQueueOptions,
  type JobState,
} from "./job-queue";

export interface BullJobQueueConfig {
  name: string;
  topology: RedisTopology;
  /** `platform.keys.queuePrefix` (hash-tagged on a Cluster): isolates deployments and tests. */
  prefix: string;
  logger: Logger;
  instanceId: string;
  options: JobQueueOptions;
  /** How long `close` waits for BullMQ to finish gracefully before dropping the connections. */
  closeTimeoutMs?: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/**
 * The queue on Redis. A job's lock is renewed while its handler runs; when an instance dies the
 * lock lapses and the stalled-job check of any other instance puts the job back in the queue.
 */
export class BullJobQueue<T> implements JobQueue<T> {
  readonly name: string;
  private readonly queue: Queue;
  private readonly connections: Redis[] = [];
  private worker?: Worker;
  private readonly controllers = new Map<string, AbortController>();

  constructor(private readonly config: BullJobQueueConfig) {
    this.name = config.name;
    const connection = this.connection("queue");
    this.queue = new Queue(config.name, {
      connection,
      prefix: config.prefix,
      defaultJobOptions: {
        attempts: config.options.attempts,
        backoff: { type: "exponential", delay: config.options.backoffMs },
        removeOnComplete: true,
        removeOnFail: { count: 1000 },
      },
    });
    this.queue.on("error", (error) => this.config.logger.warn({ err: error.message, queue: this.name }, "queue error"));
  }

  async add(id: string, data: T): Promise<void> {
    await this.queue.add(this.name, data, { jobId: id });
  }

  async ensure(id: string, data: T): Promise<boolean> {
    if ((await this.state(id)) !== "missing") return false;
    // A failed job keeps its id (removeOnFail keeps the last ones), and so would a leftover hash
    // after a partial loss: BullMQ ignores an add for an id it still knows, so clear it first.
    await this.queue.remove(id).catch(() => 0);
    await this.add(id, data);
    return true;
  }

  async state(id: string): Promise<JobState> {
    const state = await this.queue.getJobState(id);
    if (state === "active") return "active";
    if (state === "completed" || state === "failed" || state === "unknown") return "missing";
    return "waiting";
  }

  process(handler: JobHandler<T>, options: { concurrency: number }): void {
    if (this.worker) throw new Error(`queue ${this.name} already has a handler`);
    const { options: queueOptions } = this.config;
    this.worker = new Worker(this.name, (job, token) => this.handle(handler, job, token), {
      connection: this.connection("worker"),
      prefix: this.config.prefix,
      name: this.config.instanceId,
      concurrency: Math.max(1, options.concurrency),
      lockDuration: queueOptions.lockMs,
      stalledInterval: queueOptions.stalledIntervalMs,
      // A stalled job is a crashed instance, not a bad job: let it be recovered several times.
      maxStalledCount: 5,
    });
    this.worker.on("error", (error) =>
      this.config.logger.warn({ err: error.message, queue: this.name }, "worker error"),
    );
    this.worker.on("failed", (job, error) => {
      if (error instanceof WaitingError) return;
      this.config.logger.warn({ err: error.message, queue: this.name, job_id: job?.id }, "job attempt failed");
    });
  }

  async remove(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return false;
    const state = await job.getState();
    if (state !== "waiting" && state !== "delayed" && state !== "prioritized") return false;
    try {
      return (await this.queue.remove(id)) === 1;
    } catch {
      // A worker took it between the state check and the removal (it holds the lock).
      return false;
    }
  }

  async counts(): Promise<{ waiting: number; active: number }> {
    const counts = await this.queue.getJobCounts("waiting", "delayed", "prioritized", "active");
    return {
      waiting: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
    };
  }

  /**
   * Hands running jobs back, then closes gracefully; with Redis unreachable that never finishes
   * (a QUIT queues behind the commands waiting for the connection), so after the timeout the
   * connections are dropped, which fails whatever still waits on them.
   */
  async close(): Promise<void> {
    for (const controller of this.controllers.values()) controller.abort(new JobInterrupted());
    const graceful = (async () => {
      await this.worker?.close();
      await this.queue.close();
      await Promise.all(this.connections.map((each) => each.quit()));
    })();
    try {
      await withTimeout(graceful, this.config.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, `queue ${this.name} close`);
    } catch (error) {
      graceful.catch(() => {});
      this.config.logger.warn({ err: (error as Error).message, queue: this.name }, "queue closed without Redis");
    } finally {
      for (const connection of this.connections) connection.disconnect();
    }
  }

  private async handle(handler: JobHandler<T>, job: BullJob, token: string | undefined): Promise<void> {
    const id = job.id as string;
    const controller = new AbortController();
    this.controllers.set(id, controller);
    try {
      await handler({
        id,
        data: job.data as T,
        attempt: job.attemptsMade + 1,
        maxAttempts: job.opts.attempts ?? 1,
        signal: controller.signal,
      } satisfies Job<T>);
    } catch (error) {
      if (error instanceof JobInterrupted) {
        // Back to the queue without spending an attempt, for another instance to continue.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      throw error;
    } finally {
      this.controllers.delete(id);
    }
  }

  /**
   * BullMQ needs connections of its own. A worker blocks on its connection and waits out an outage
   * (no per-command retry limit, as BullMQ requires); the producer side fails at once while Redis
   * is unreachable, so an `add` is an error its caller can report rather than an open-ended wait.
   */
  private connection(role: "queue" | "worker"): Redis {
    const connection = openRedis({
      topology: this.config.topology,
      logger: this.config.logger,
      name: `${this.name}:${this.config.instanceId}:${role}`,
      policy: role === "worker" ? "blocking" : "producer",
    });
    this.connections.push(connection);
    return connection;
  }
}
