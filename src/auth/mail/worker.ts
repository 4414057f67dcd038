import { and, asc, count, eq, inArray, isNull, lt, lte, min, or, sql } from "drizzle-orm";
import type { Database } from "../../shared/db";
import type { Env } from "../../shared/env";
import { redactText } from "../../shared/log-redaction";
import type { Logger } from "../../shared/logger";
import type { Metrics } from "../../shared/metrics";
import { mailOutbox } from "../tables";
import { MAIL_TEMPLATES, type MailPayloads, type MailTemplate, renderMail } from "./templates";
import type { Mailer } from "./transport";

/** Mails one replica claims at once. */
const BATCH = 10;
/**
 * How long a claimed mail is left to its replica before another may take it: longer than a batch
 * can take against a stalling relay (10 mails x the transport's 50 s of timeouts). A replica that
 * dies mid-batch only delays its mails by this much.
 */
const LEASE_MS = 10 * 60_000;
/** Sent and failed rows (already emptied) are deleted after this long. */
const KEEP_DONE_MS = 30 * 24 * 3600_000;
const CLEANUP_EVERY_MS = 3600_000;

type OutboxRow = typeof mailOutbox.$inferSelect;
export type MailOutcome = "sent" | "retry" | "failed";

export interface MailWorker {
  /** One round: claims the due mails and tries each once. Returns how many it tried. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

interface WorkerDeps {
  db: Database;
  env: Env;
  logger: Logger;
  metrics: Metrics;
  mailer: Mailer;
}

/** Delay before attempt `attempts + 1`, given `attempts` failed ones: base doubling, capped. */
export const retryDelayMs = (env: Env, attempts: number): number =>
  Math.min(env.MAIL_RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1), env.MAIL_RETRY_MAX_MS);

/**
 * Sends the outbox's due mails every MAIL_OUTBOX_INTERVAL_MS. Replicas share the table: each claims
 * its batch with FOR UPDATE SKIP LOCKED and moves the rows' next attempt past a lease before
 * sending, so no two replicas send one mail, and no transaction stays open while SMTP talks.
 * Delivery is at least once: a crash between the relay's answer and the commit resends (with the
 * same Message-ID).
 */
export function startMailWorker(deps: WorkerDeps): MailWorker {
  const { db, env, logger } = deps;
  const mails = deps.metrics.counter("auth_mails_total", "Mail attempts by template and outcome", [
    "template",
    "outcome",
  ]);
  // Every series a dashboard reads exists from the start, at 0.
  for (const template of MAIL_TEMPLATES)
    for (const outcome of ["sent", "retry", "failed"]) mails.inc({ template, outcome }, 0);
  const pending = and(isNull(mailOutbox.sentAt), isNull(mailOutbox.failedAt));
  deps.metrics.gaugeFrom("auth_mail_outbox_pending", "Mails in the outbox not yet sent nor given up", async () => {
    const [row] = await db.select({ n: count() }).from(mailOutbox).where(pending);
    return row?.n ?? 0;
  });
  deps.metrics.gaugeFrom(
    "auth_mail_outbox_oldest_pending_seconds",
    "Age of the oldest mail in the outbox not yet sent nor given up (0: none)",
    async () => {
      const [row] = await db
        .select({ oldest: min(mailOutbox.createdAt) })
        .from(mailOutbox)
        .where(pending);
      const oldest = row?.oldest ? new Date(row.oldest).getTime() : undefined;
      return oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
    },
  );

  let lastCleanup = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  const record = (template: string, outcome: MailOutcome) => mails.inc({ template, outcome });

  async function claim(): Promise<OutboxRow[]> {
    return db.transaction(async (tx) => {
      const due = await tx
        .select()
        .from(mailOutbox)
        .where(and(pending, lte(mailOutbox.nextAttemptAt, sql`now()`)))
        .orderBy(asc(mailOutbox.nextAttemptAt))
        .limit(BATCH)
        .for("update", { skipLocked: true });
      if (due.length === 0) return [];
      await tx
        .update(mailOutbox)
        .set({ nextAttemptAt: new Date(Date.now() + LEASE_MS) })
        .where(
          inArray(
            mailOutbox.id,
            due.map((row) => row.id),
          ),
        );
      return due;
    });
  }

  async function deliver(row: OutboxRow): Promise<void> {
    let rendered: ReturnType<typeof renderMail>;
    try {
      rendered = renderMail(row.template as MailTemplate, row.locale, row.payload as MailPayloads[MailTemplate]);
    } catch (error) {
      // A row this version cannot render (an unknown template, a payload missing a field) never will.
      await giveUp(row, `cannot render: ${String(error)}`);
      return;
    }
    try {
      await deps.mailer.send({
        id: row.id,
        template: row.template,
        to: row.toAddress,
        ...rendered,
        links: linksOf(row.payload),
      });
    } catch (error) {
      await failed(row, error);
      return;
    }
    // The address and the link (its token) are not kept once the mail has left.
    await db
      .update(mailOutbox)
      .set({ sentAt: new Date(), attempts: row.attempts + 1, toAddress: "", payload: {}, lastError: null })
      .where(eq(mailOutbox.id, row.id));
    record(row.template, "sent");
    logger.info({ mail_id: row.id, template: row.template, attempts: row.attempts + 1 }, "mail sent");
  }

  async function failed(row: OutboxRow, error: unknown): Promise<void> {
    const problem = describe(error);
    const attempts = row.attempts + 1;
    const age = Date.now() - row.createdAt.getTime();
    if (isPermanent(error) || age >= env.MAIL_GIVE_UP_AFTER_S * 1000) {
      await giveUp(row, problem, attempts);
      return;
    }
    const delay = retryDelayMs(env, attempts);
    await db
      .update(mailOutbox)
      .set({ attempts, nextAttemptAt: new Date(Date.now() + delay), lastError: problem })
      .where(eq(mailOutbox.id, row.id));
    record(row.template, "retry");
    logger.warn(
      { mail_id: row.id, template: row.template, attempts, retry_in_ms: delay, problem },
      "mail not sent; will retry",
    );
  }

  async function giveUp(row: OutboxRow, problem: string, attempts = row.attempts): Promise<void> {
    await db
      .update(mailOutbox)
      .set({ failedAt: new Date(), attempts, toAddress: "", payload: {}, lastError: problem })
      .where(eq(mailOutbox.id, row.id));
    record(row.template, "failed");
    logger.error(
      { mail_id: row.id, user_id: row.userId, template: row.template, attempts, problem },
      "mail given up: not sent",
    );
  }

  async function cleanup(): Promise<void> {
    if (Date.now() - lastCleanup < CLEANUP_EVERY_MS) return;
    lastCleanup = Date.now();
    const before = new Date(Date.now() - KEEP_DONE_MS);
    await db.delete(mailOutbox).where(or(lt(mailOutbox.sentAt, before), lt(mailOutbox.failedAt, before)));
  }

  /** Claims and sends batches until fewer than a batch are due (a backlog drains without waiting for rounds). */
  async function runOnce(): Promise<number> {
    let tried = 0;
    for (;;) {
      const rows = await claim();
      // The transport's pool bounds the connections; the batch bounds the mails in flight.
      await Promise.all(rows.map((row) => deliver(row)));
      tried += rows.length;
      if (rows.length < BATCH || stopped) break;
    }
    await cleanup();
    return tried;
  }

  const tick = () => {
    running = runOnce()
      .catch((error) => logger.warn({ err: String(error) }, "mail outbox round failed; next round retries"))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, env.MAIL_OUTBOX_INTERVAL_MS);
      });
  };
  timer = setTimeout(tick, 0);

  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      deps.mailer.close();
    },
  };
}

/** A recipient the relay refused with a 5xx: retrying cannot help. Anything else (the relay away, 4xx) is retried. */
function isPermanent(error: unknown): boolean {
  const { code, responseCode } = (error ?? {}) as { code?: string; responseCode?: number };
  return code === "EENVELOPE" && typeof responseCode === "number" && responseCode >= 500;
}

/** The error as stored and logged: its code and message, with addresses and secrets taken out. */
function describe(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  return redactText(`${code ? `${code}: ` : ""}${message ?? String(error)}`).slice(0, 500);
}

function linksOf(payload: unknown): string[] {
  const url = (payload as { url?: unknown } | null)?.url;
  return typeof url === "string" ? [url] : [];
}
