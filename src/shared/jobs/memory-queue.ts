import {
  type Job,
  type JobHandler,
  JobInterrupted,
  type JobQueue,
  type JobQueueOptions,
  type JobState,
} from "./job-queue";

interface Entry<T> {
  id: string;
  data: T;
  attempt: number;
  state: "waiting" | "delayed" | "active";
}

/**
 * The embedded-mode queue: one process, no persistence (jobs of a stopped process are lost, as
 * everything else in embedded mode). Same semantics as the BullMQ adapter otherwise.
 */
export class MemoryJobQueue<T> implements JobQueue<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly waiting: string[] = [];
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private handler?: JobHandler<T>;
  private concurrency = 0;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly options: JobQueueOptions,
    private readonly onError: (error: unknown, jobId: string) => void = () => {},
  ) {}

  async add(id: string, data: T): Promise<void> {
    if (this.closed) throw new Error(`queue ${this.name} is closed`);
    if (this.entries.has(id)) return;
    this.entries.set(id, { id, data, attempt: 1, state: "waiting" });
    this.waiting.push(id);
    this.pump();
  }

  async ensure(id: string, data: T): Promise<boolean> {
    if (this.entries.has(id)) return false;
    await this.add(id, data);
    return true;
  }

  async state(id: string): Promise<JobState> {
    const entry = this.entries.get(id);
    if (!entry) return "missing";
    return entry.state === "active" ? "active" : "waiting";
  }

  process(handler: JobHandler<T>, options: { concurrency: number }): void {
    if (this.handler) throw new Error(`queue ${this.name} already has a handler`);
    this.handler = handler;
    this.concurrency = Math.max(1, options.concurrency);
    this.pump();
  }

  async remove(id: string): Promise<boolean> {
    const entry = this.entries.get(id);
    if (!entry || entry.state === "active") return false;
    this.entries.delete(id);
    const index = this.waiting.indexOf(id);
    if (index >= 0) this.waiting.splice(index, 1);
    return true;
  }

  async counts(): Promise<{ waiting: number; active: number }> {
    let waiting = 0;
    for (const entry of this.entries.values()) if (entry.state !== "active") waiting++;
    return { waiting, active: this.running.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const { controller } of this.running.values()) controller.abort(new JobInterrupted());
    await Promise.allSettled([...this.running.values()].map((each) => each.done));
  }

  private pump(): void {
    const handler = this.handler;
    if (!handler || this.closed) return;
    while (this.running.size < this.concurrency && this.waiting.length > 0) {
      const id = this.waiting.shift() as string;
      const entry = this.entries.get(id);
      if (!entry) continue;
      entry.state = "active";
      const controller = new AbortController();
      const job: Job<T> = {
        id,
        data: entry.data,
        attempt: entry.attempt,
        maxAttempts: this.options.attempts,
        signal: controller.signal,
      };
      const done = this.run(handler, job, entry);
      this.running.set(id, { controller, done });
    }
  }

  private async run(handler: JobHandler<T>, job: Job<T>, entry: Entry<T>): Promise<void> {
    try {
      await handler(job);
      this.entries.delete(entry.id);
    } catch (error) {
      if (error instanceof JobInterrupted || this.closed) {
        entry.state = "waiting";
      } else if (entry.attempt < this.options.attempts) {
        this.onError(error, entry.id);
        entry.state = "delayed";
        const delay = this.options.backoffMs * 2 ** (entry.attempt - 1);
        entry.attempt += 1;
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (!this.entries.has(entry.id)) return;
          entry.state = "waiting";
          this.waiting.push(entry.id);
          this.pump();
        }, delay);
        this.timers.add(timer);
      } else {
        this.onError(error, entry.id);
        this.entries.delete(entry.id);
      }
    } finally {
      this.running.delete(entry.id);
      this.pump();
    }
  }
}
