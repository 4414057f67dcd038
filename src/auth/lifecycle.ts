import { and, asc, eq, lte, sql } from "drizzle-orm";
import { rowsOf } from "../shared/db";
import type { EventConsumer } from "../shared/events/event-log";
import { eventLogFor } from "../shared/events/for-platform";
import { ERASING_SERVICES, publishUserDeleted, UserErasedEvent } from "../shared/events/user-deleted";
import { EXPORTING_SERVICES, ExportPartEvent, publishExportRequested } from "../shared/events/user-export";
import { RelayPause } from "../shared/relay-pause";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import { tarGz } from "./archive";
import type { AuthContext } from "./context";
import { enqueueMail } from "./mail/outbox";
import { dataExports, deletedUsers, erasures, exportParts, users } from "./tables";
import { eraseUser, exportUser } from "./user-data";

export interface LifecycleOptions {
  /** How often the relay looks for work without being woken. */
  pollMs?: number;
  /** An event still unanswered this long is published again (a service's group lost, Redis emptied). */
  republishMs?: number;
  /** A pending export older than this fails (`export_timed_out`). */
  exportTimeoutMs?: number;
}

/** How long a ready export's archive is kept. */
export const EXPORT_KEEP_MS = 24 * 3600_000;

/**
 * The account lifecycle on auth's side. One loop, on every auth replica:
 * - publishes `user_deleted` for every deletion whose erasure is not complete, and
 *   `export_requested` for every pending export: at once when woken after the commit, again after
 *   `republishMs` while unanswered, and with backoff while Redis refuses. The committed rows are
 *   the outbox: nothing is lost between the commit and the stream.
 * - finishes deletions whose services have all reported, fails exports pending too long, and
 *   expires ready exports (the archive bytes are deleted) once their 24 h are over.
 * Two consumers (group "auth"): `user_erased` records each service's report and finishes the
 * deletion with the last one; `export_parts` stores each part and assembles the archive with the
 * last one. Auth's own part of an export comes through the same consumer as the other services'.
 */
export class AccountLifecycle {
  private readonly options: Required<LifecycleOptions>;
  private readonly published = new Map<string, number>();
  private stopped = true;
  private running?: Promise<void>;
  private readonly pause = new RelayPause();
  private failures = 0;
  private consumers: EventConsumer[] = [];
  private userData?: UserDataConsumers;
  private readonly metrics;

  constructor(
    private readonly ctx: AuthContext,
    options: LifecycleOptions = {},
  ) {
    this.options = { pollMs: 2000, republishMs: 5 * 60_000, exportTimeoutMs: 3600_000, ...options };
    const { metrics } = ctx.platform;
    this.metrics = {
      erased: metrics.counter("auth_accounts_erased_total", "Deleted accounts whose erasure finished everywhere"),
      exports: metrics.counter("auth_exports_total", "Data exports by how they ended", ["outcome"]),
      publishFailures: metrics.counter(
        "auth_lifecycle_publish_failures_total",
        "Failed attempts to put user_deleted or export_requested on the stream",
      ),
    };
    metrics.gaugeFrom("auth_erasures_pending", "Deleted accounts whose erasure is not finished", async () => {
      return (await this.pendingErasures()).length;
    });
    metrics.gaugeFrom(
      "auth_erasure_oldest_seconds",
      "Age of the oldest deletion whose erasure is not finished (0: none)",
      async () => {
        const oldest = (await this.pendingErasures())[0];
        return oldest ? (Date.now() - oldest.deletedAt.getTime()) / 1000 : 0;
      },
    );
    metrics.gaugeFrom("auth_exports_pending", "Data exports waiting for parts", async () => {
      const [row] = rowsOf<{ n: number }>(
        await ctx.db.execute(sql`select count(*)::int as n from auth.exports where status = 'pending'`),
      );
      return row?.n ?? 0;
    });
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const log = eventLogFor(ctx.platform);
    const common = { group: "auth", consumer: ctx.platform.instanceId };
    this.consumers.push(
      await log.consume({
        ...common,
        stream: ctx.platform.keys.userErasedStream,
        handler: async (entry) => {
          const event = UserErasedEvent.safeParse(safeJson(entry.payload));
          if (!event.success) return ctx.logger.error({ event_id: entry.id }, "malformed user-erased event dropped");
          await this.recordErasure(event.data.userId, event.data.service);
        },
        onError: (error, entry) =>
          ctx.logger.warn({ err: String(error), event_id: entry?.id }, "erasure report failed; will be redelivered"),
      }),
      await log.consume({
        ...common,
        stream: ctx.platform.keys.exportPartsStream,
        handler: async (entry) => {
          const event = ExportPartEvent.safeParse(safeJson(entry.payload));
          if (!event.success) return ctx.logger.error({ event_id: entry.id }, "malformed export part dropped");
          await this.storePart(event.data);
        },
        onError: (error, entry) =>
          ctx.logger.warn({ err: String(error), event_id: entry?.id }, "export part not stored; will be redelivered"),
      }),
    );
    this.userData = await startUserDataConsumers(ctx.platform, ctx.logger, {
      service: "auth",
      export: (userId) => exportUser(ctx, userId),
    });
    this.stopped = false;
    this.running = this.loop();
  }

  notify(): void {
    this.pause.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.interrupt();
    await this.running;
    await this.userData?.stop();
    await Promise.all(this.consumers.map((consumer) => consumer.stop()));
  }

  /** Deletions not finished, oldest first. */
  pendingErasures(): Promise<Array<{ userId: string; deletedAt: Date }>> {
    return this.ctx.db
      .select({ userId: deletedUsers.userId, deletedAt: deletedUsers.deletedAt })
      .from(deletedUsers)
      .innerJoin(users, eq(users.id, deletedUsers.userId))
      .orderBy(asc(deletedUsers.deletedAt));
  }

  /** A service's report: kept only while the deletion is in progress, then the deletion is tried. */
  async recordErasure(userId: string, service: string): Promise<void> {
    await this.ctx.db.execute(sql`
      insert into auth.erasures (user_id, service)
      select ${userId}::uuid, ${service}
      where exists (select 1 from auth.deleted_users d join auth.users u on u.id = d.user_id where d.user_id = ${userId}::uuid)
      on conflict do nothing`);
    this.ctx.logger.info({ user_id: userId, service }, "erasure reported");
    await this.finish(userId);
  }

  private async finish(userId: string): Promise<void> {
    const outcome = await eraseUser(this.ctx, userId);
    if (outcome !== "erased") return;
    this.published.delete(`deleted:${userId}`);
    this.metrics.erased.inc();
    this.ctx.logger.info({ user_id: userId }, "account erased everywhere");
  }

  /** Stores one part; the last of the four assembles the archive, in the same transaction. */
  async storePart(part: ExportPartEvent): Promise<void> {
    const { ctx } = this;
    const outcome = await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .select({ id: dataExports.id, status: dataExports.status, requestedAt: dataExports.requestedAt })
        .from(dataExports)
        .where(and(eq(dataExports.id, part.exportId), eq(dataExports.userId, part.userId)))
        .for("update");
      if (row?.status !== "pending") return "ignored" as const;
      const data = part.error ? { error: part.error } : JSON.parse(part.json ?? "null");
      await tx
        .insert(exportParts)
        .values({ exportId: row.id, service: part.service, data })
        .onConflictDoUpdate({ target: [exportParts.exportId, exportParts.service], set: { data } });
      if (part.error) {
        await tx.update(dataExports).set({ status: "failed" }).where(eq(dataExports.id, row.id));
        return "failed" as const;
      }
      const parts = await tx.select().from(exportParts).where(eq(exportParts.exportId, row.id));
      if (!EXPORTING_SERVICES.every((service) => parts.some((each) => each.service === service))) {
        return "waiting" as const;
      }
      const files = EXPORTING_SERVICES.map((service) => ({
        name: `${service}.json`,
        content: JSON.stringify(parts.find((each) => each.service === service)?.data ?? null, null, 2),
      }));
      const manifest = {
        format: "adiuva-export/1",
        export_id: row.id,
        user_id: part.userId,
        requested_at: row.requestedAt.toISOString(),
        created_at: new Date().toISOString(),
        files: files.map((file) => ({
          name: file.name,
          bytes: Buffer.byteLength(file.content),
          sha256: new Bun.CryptoHasher("sha256").update(file.content).digest("hex"),
        })),
      };
      const archive = tarGz([{ name: "manifest.json", content: JSON.stringify(manifest, null, 2) }, ...files]);
      const now = new Date();
      await tx
        .update(dataExports)
        .set({
          status: "ready",
          // A Buffer: the driver sends it as bytea (a bare Uint8Array it would not).
          archive: Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength),
          archiveSha256: new Bun.CryptoHasher("sha256").update(archive).digest("hex"),
          readyAt: now,
          expiresAt: new Date(now.getTime() + EXPORT_KEEP_MS),
        })
        .where(eq(dataExports.id, row.id));
      await tx.delete(exportParts).where(eq(exportParts.exportId, row.id));
      const [user] = await tx.select().from(users).where(eq(users.id, part.userId));
      if (user) {
        const url = `${ctx.env.PUBLIC_URL}/api/v1/auth/me/exports/${row.id}/download`;
        await enqueueMail(tx, {
          userId: user.id,
          to: user.email,
          template: "export_ready",
          locale: user.locale,
          payload: { export_id: row.id, url },
        });
      }
      return "ready" as const;
    });
    if (outcome === "ready" || outcome === "failed") {
      this.published.delete(`export:${part.exportId}`);
      this.metrics.exports.inc({ outcome });
      ctx.logger.info({ user_id: part.userId, export_id: part.exportId, outcome }, "data export finished");
    }
  }

  /** One pass of the relay; exposed for tests. */
  async runOnce(): Promise<void> {
    await this.relayDeletions();
    await this.relayExports();
    await this.expireExports();
  }

  private async relayDeletions(): Promise<void> {
    for (const { userId, deletedAt } of await this.pendingErasures()) {
      const reported = await this.ctx.db
        .select({ service: erasures.service })
        .from(erasures)
        .where(eq(erasures.userId, userId));
      if (ERASING_SERVICES.every((service) => reported.some((row) => row.service === service))) {
        await this.finish(userId);
        continue;
      }
      await this.publishOnce(`deleted:${userId}`, () =>
        publishUserDeleted(this.ctx.platform, { userId, deletedAt: deletedAt.getTime() }),
      );
    }
  }

  private async relayExports(): Promise<void> {
    const pending = await this.ctx.db
      .select({ id: dataExports.id, userId: dataExports.userId, requestedAt: dataExports.requestedAt })
      .from(dataExports)
      .where(eq(dataExports.status, "pending"));
    for (const row of pending) {
      if (Date.now() - row.requestedAt.getTime() > this.options.exportTimeoutMs) {
        await this.ctx.db
          .update(dataExports)
          .set({ status: "failed" })
          .where(and(eq(dataExports.id, row.id), eq(dataExports.status, "pending")));
        this.published.delete(`export:${row.id}`);
        this.metrics.exports.inc({ outcome: "timed_out" });
        this.ctx.logger.warn({ user_id: row.userId, export_id: row.id }, "data export timed out");
        continue;
      }
      await this.publishOnce(`export:${row.id}`, () =>
        publishExportRequested(this.ctx.platform, {
          exportId: row.id,
          userId: row.userId,
          requestedAt: row.requestedAt.getTime(),
        }),
      );
    }
  }

  /** Ready exports past their 24 h: status expired, archive bytes gone. */
  private async expireExports(): Promise<void> {
    const expired = await this.ctx.db
      .update(dataExports)
      .set({ status: "expired", archive: null, archiveSha256: null })
      .where(and(eq(dataExports.status, "ready"), lte(dataExports.expiresAt, new Date())))
      .returning({ id: dataExports.id });
    if (expired.length > 0) this.metrics.exports.inc({ outcome: "expired" }, expired.length);
  }

  /** Publishes unless this process did within `republishMs`; a failure is retried on the next pass. */
  private async publishOnce(key: string, publish: () => Promise<void>): Promise<void> {
    const last = this.published.get(key);
    if (last !== undefined && Date.now() - last < this.options.republishMs) return;
    await publish();
    this.published.set(key, Date.now());
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let delay = this.options.pollMs;
      try {
        await this.runOnce();
        this.failures = 0;
      } catch (error) {
        this.failures += 1;
        this.metrics.publishFailures.inc();
        if (this.failures === 1) {
          this.ctx.logger.warn({ err: String(error) }, "account lifecycle relay failed; retrying");
        }
        delay = Math.min(200 * 2 ** (this.failures - 1), 5000);
      }
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.pause.wait(ms, this.failures > 0);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
