import { and, eq, inArray, lt } from "drizzle-orm";
import { pruneBackups } from "./backups";
import type { StorageContext } from "./context";
import { objects, usage } from "./tables";
import { discardUpload } from "./uploads";

/** Rows one sweep handles at most; the next sweep takes the rest. */
const BATCH = 100;

/**
 * Aborts uploads past their expiry (releasing their reservations) and prunes backups past their
 * tier's retention. Every replica sweeps on its own interval: each removal claims its row in
 * PostgreSQL (`forget` deletes it once), so two replicas sweeping together remove nothing twice.
 */
export class Sweeper {
  private timer?: ReturnType<typeof setInterval>;
  private running?: Promise<void>;

  constructor(
    private readonly ctx: StorageContext,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.intervalMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass; a pass already running is awaited instead of doubled. */
  sweep(): Promise<void> {
    this.running ??= this.pass()
      .catch((error) => this.ctx.logger.warn({ err: error }, "storage sweep failed"))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { db } = this.ctx;
    const expired = await db
      .select()
      .from(objects)
      .where(and(inArray(objects.status, ["uploading", "verifying"]), lt(objects.expiresAt, new Date())))
      .limit(BATCH);
    for (const row of expired) await discardUpload(this.ctx, row);
    const owners = await db
      .selectDistinct({ userId: objects.userId, tier: usage.tier })
      .from(objects)
      .innerJoin(usage, eq(usage.userId, objects.userId))
      .where(and(eq(objects.kind, "backup"), eq(objects.status, "ready")));
    for (const owner of owners) await pruneBackups(this.ctx, owner.userId, owner.tier);
  }
}
