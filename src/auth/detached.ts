import type { Logger } from "../shared/logger";

/**
 * Work a request starts and does not wait for, so its answer cannot depend on it (a password reset
 * answers before the account is looked up: known and unknown addresses take the same time). A
 * failure is logged, never thrown. Past `limit` tasks in flight the caller waits for its own, so a
 * flood queues on the requests rather than piling up in memory; `settled()` waits for all (stop).
 */
export class DetachedWork {
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly logger: Logger,
    private readonly limit = 100,
  ) {}

  async run(name: string, work: () => Promise<void>): Promise<void> {
    const task: Promise<void> = work()
      .catch((error) => this.logger.warn({ err: String(error), task: name }, "detached work failed"))
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
    if (this.inFlight.size > this.limit) await task;
  }

  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
