import { asc, count, eq, sql } from "drizzle-orm";
import { rowsOf } from "../shared/db";
import { publishTierChanged } from "../shared/events/tier-changed";
import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import { RelayPause } from "../shared/relay-pause";
import { outbox } from "./tables";

export interface OutboxRelayOptions {
  batchSize?: number;
  /** How often the outbox is looked at without being told (rows left by a crash or another instance). */
  pollMs?: number;
  /** First retry delay after a failed publish; doubles up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** Any constant works as long as every billing instance uses it: one relay drains at a time. */
const RELAY_LOCK_ID = 0x6164_6962; // "adib"

/**
 * Moves committed tier changes from the outbox to the event stream (`publishTierChanged`), in
 * commit order, deleting each row only after the stream has it. A failed publish (Redis down)
 * keeps the row and retries with capped exponential backoff; a crash between the publish and the
 * delete republishes, which consumers absorb since they are idempotent on `eventId`.
 */
export class OutboxRelay {
  private readonly options: Required<OutboxRelayOptions>;
  private stopped = true;
  private running?: Promise<void>;
  private readonly pause = new RelayPause();
  private failures = 0;
  private lastWarnAt = 0;
  private readonly published;
  private readonly failed;
  private readonly failing;

  constructor(
    private readonly platform: Platform,
    private readonly logger: Logger,
    options: OutboxRelayOptions = {},
  ) {
    this.options = { batchSize: 100, pollMs: 2000, backoffMs: 200, maxBackoffMs: 5000, ...options };
    this.published = platform.metrics.counter("billing_outbox_published_total", "Tier changes moved to the stream");
    this.failed = platform.metrics.counter("billing_outbox_failures_total", "Failed attempts to drain the outbox");
    this.failing = platform.metrics.gauge("billing_outbox_failing", "1 while the outbox cannot reach the stream");
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.running = this.loop();
  }

  /** Drains soon; ignored while backing off, so a burst of writes does not hammer a down Redis. */
  notify(): void {
    if (this.failures > 0) return;
    this.pause.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.interrupt();
    await this.running;
  }

  /** Rows still waiting for the stream. */
  async pending(): Promise<number> {
    const [row] = await this.platform.db.select({ n: count() }).from(outbox);
    return row?.n ?? 0;
  }

  /** One pass over the outbox; returns how many rows it published and whether it stopped on a failure. */
  async drainOnce(): Promise<{ published: number; failed: boolean; more: boolean }> {
    const { batchSize } = this.options;
    return this.platform.db.transaction(async (tx) => {
      const [lock] = rowsOf<{ ok: boolean }>(
        await tx.execute(sql`select pg_try_advisory_xact_lock(${RELAY_LOCK_ID}) as ok`),
      );
      if (!lock?.ok) return { published: 0, failed: false, more: false };
      const rows = await tx.select().from(outbox).orderBy(asc(outbox.id)).limit(batchSize);
      let published = 0;
      for (const row of rows) {
        try {
          await publishTierChanged(this.platform, row.event);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          await tx
            .update(outbox)
            .set({ attempts: row.attempts + 1, lastError: message.slice(0, 500) })
            .where(eq(outbox.id, row.id));
          this.warn({ err: message, outbox_id: row.id, attempts: row.attempts + 1 }, "tier change not published yet");
          return { published, failed: true, more: true };
        }
        await tx.delete(outbox).where(eq(outbox.id, row.id));
        published += 1;
      }
      return { published, failed: false, more: rows.length === batchSize };
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let delay = this.options.pollMs;
      try {
        const result = await this.drainOnce();
        this.published.inc(result.published);
        if (result.failed) delay = this.backoff();
        else {
          this.failures = 0;
          if (result.more) delay = 0;
        }
      } catch (error) {
        this.warn({ err: error instanceof Error ? error.message : String(error) }, "outbox drain failed");
        delay = this.backoff();
      }
      this.failing.set(this.failures > 0 ? 1 : 0);
      await this.sleep(delay);
    }
  }

  private backoff(): number {
    this.failed.inc();
    this.failures += 1;
    return Math.min(this.options.backoffMs * 2 ** (this.failures - 1), this.options.maxBackoffMs);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.pause.wait(ms, this.failures > 0);
  }

  /** A down Redis fails every retry; one line every few seconds is enough. */
  private warn(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.lastWarnAt < 5000) return;
    this.lastWarnAt = now;
    this.logger.warn(fields, message);
  }
}
