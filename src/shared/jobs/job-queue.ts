/**
 * A durable work queue: any instance may add jobs, every instance that calls `process` shares
 * them. BullMQ on Redis in production (jobs survive restarts, a crashed worker's jobs are
 * retried elsewhere), in-process in embedded mode; both pass `test/shared/jobs.contract.test.ts`.
 */
export interface Job<T> {
  id: string;
  data: T;
  /** 1 on the first attempt; interruptions and crash recoveries do not count. */
  attempt: number;
  maxAttempts: number;
  /** Aborted when this instance stops; the handler should then throw `JobInterrupted` promptly. */
  signal: AbortSignal;
}

export type JobHandler<T> = (job: Job<T>) => Promise<void>;

export interface JobQueueOptions {
  /** Attempts before a throwing job is dropped (the handler records its own final failure). */
  attempts: number;
  /** Delay before the first retry, doubled on each further one. */
  backoffMs: number;
  /** How long a silent worker keeps a job before another instance may take it over. */
  lockMs: number;
  /** How often instances look for jobs whose worker died. */
  stalledIntervalMs: number;
}

export const DEFAULT_JOB_QUEUE_OPTIONS: JobQueueOptions = {
  attempts: 3,
  backoffMs: 1000,
  lockMs: 30_000,
  stalledIntervalMs: 15_000,
};

/** Where a job is: waiting (or delayed for a retry), running, or nowhere (never added, finished, lost). */
export type JobState = "waiting" | "active" | "missing";

export interface JobQueue<T> {
  readonly name: string;
  /** Adds a job; adding an id that is already waiting or running is a no-op. */
  add(id: string, data: T): Promise<void>;
  /**
   * Adds the job unless one with this id is waiting or running; a finished one with the id (a
   * failed job kept for inspection) is replaced. True when it added. Safe to race from several
   * instances: at most one job per id exists at any time.
   */
  ensure(id: string, data: T): Promise<boolean>;
  state(id: string): Promise<JobState>;
  /** Starts consuming on this instance, at most `concurrency` jobs at a time. */
  process(handler: JobHandler<T>, options: { concurrency: number }): void;
  /** Removes a job that has not started; false when it is running or unknown. */
  remove(id: string): Promise<boolean>;
  /** Jobs waiting to start and jobs running, across every instance. */
  counts(): Promise<{ waiting: number; active: number }>;
  /** Interrupts running handlers (their job goes back to the queue), waits for them, releases connections. */
  close(): Promise<void>;
}

/** Thrown by a handler that stops because its instance is stopping: the job is put back, not failed. */
export class JobInterrupted extends Error {
  override name = "JobInterrupted";
  constructor(message = "job interrupted by shutdown") {
    super(message);
  }
}
