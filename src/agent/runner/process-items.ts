import { and, asc, eq, sql } from "drizzle-orm";
import { DeviceCallError } from "../../shared/device-rpc";
import type { AgentContext } from "../context";
import type { EntityKind } from "../registry";
import { agentRunItems, agentRunLogs } from "../tables";
import { classifyItem, extractItem } from "./extract";
import type { RunReporter } from "./reporter";
import type { Source } from "./source";
import { type Created, writeEntities } from "./write";

/** The device (or the way to it) is gone: the run pauses instead of failing every remaining file. */
export class DeviceGone extends Error {
  override name = "DeviceGone";
}

const DEVICE_GONE = new Set(["device_offline", "device_disconnected", "rpc_unavailable"]);

export interface ItemWork {
  ctx: AgentContext;
  runId: string;
  userId: string;
  source: Source;
  kinds: EntityKind[];
  reporter: RunReporter;
  signal: AbortSignal;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);

/**
 * Processes every pending item of the run with bounded concurrency. Resolves when none is left;
 * throws DeviceGone (remaining items stay pending) or the abort reason when the signal fires.
 */
export async function processPending(work: ItemWork): Promise<void> {
  const pending = await work.ctx.db
    .select({ item: agentRunItems.item })
    .from(agentRunItems)
    .where(and(eq(agentRunItems.runId, work.runId), eq(agentRunItems.status, "pending")))
    .orderBy(asc(agentRunItems.item));
  const queue = pending.map((row) => row.item);
  // Stops the other in-flight items as soon as one learns the device is gone.
  const stop = new AbortController();
  const signal = AbortSignal.any([work.signal, stop.signal]);
  let gone: DeviceGone | undefined;
  const lane = async () => {
    for (let item = queue.shift(); item !== undefined && !signal.aborted; item = queue.shift()) {
      try {
        await processItem(work, item, signal);
      } catch (error) {
        if (error instanceof DeviceGone) {
          gone ??= error;
          stop.abort(error);
        } else if (!signal.aborted) {
          throw error;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, work.ctx.settings.itemConcurrency) }, lane));
  work.signal.throwIfAborted();
  if (gone) throw gone;
}

async function processItem(work: ItemWork, item: string, signal: AbortSignal): Promise<void> {
  const { ctx } = work;
  const started = performance.now();
  try {
    const text = await work.source.read(item, signal);
    if (!text) {
      await finishItem(work, item, "skipped", { error: "not a text file" });
      return;
    }
    const classification = await classifyItem(ctx.models.classify, text, signal);
    if (!classification.relevant || work.kinds.length === 0) {
      await finishItem(work, item, "done", { category: classification.category });
      return;
    }
    const found = await extractItem(ctx.models.extract, text, work.kinds, classification.category, signal);
    const created = await writeEntities(
      {
        rpc: ctx.rpc,
        userId: work.userId,
        scope: work.source.scope,
        item,
        origin: `agent:${work.runId}`,
        deadlineMs: ctx.settings.deviceCallMs,
        signal,
      },
      found,
    );
    await finishItem(work, item, "done", { category: classification.category, created });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof DeviceCallError && DEVICE_GONE.has(error.reason)) throw new DeviceGone(error.message);
    // One broken file (unreadable, odd model answer, a tool refusing it) is recorded, not fatal.
    await finishItem(work, item, "failed", { error: message(error) });
    await work.reporter.log("warn", `item failed: ${message(error)}`, item);
  } finally {
    ctx.metrics
      .histogram("agent_item_seconds", "Time to process one agent item", [], [0.01, 0.05, 0.1, 0.5, 1, 5, 30])
      .observe((performance.now() - started) / 1000);
  }
}

/**
 * Records an item's outcome and adds it to the run's counters in one transaction, only if the
 * item was still pending: an item finished twice (a recovered job racing a slow old worker)
 * is counted once.
 */
async function finishItem(
  work: ItemWork,
  item: string,
  status: "done" | "failed" | "skipped",
  outcome: { category?: string; created?: Created; error?: string },
): Promise<void> {
  const created = outcome.created ?? { tasks: 0, projects: 0, notes: 0, events: 0 };
  await work.ctx.db.transaction(async (tx) => {
    // Losing the last few completions in a database crash only means redoing those items, which
    // the idempotency keys make harmless; not waiting for the WAL flush per item is worth it.
    await tx.execute(sql`set local synchronous_commit = off`);
    const updated = await tx
      .update(agentRunItems)
      .set({
        status,
        category: outcome.category ?? null,
        created: outcome.created ?? null,
        error: outcome.error ?? null,
        updatedAt: new Date(),
      })
      .where(
        and(eq(agentRunItems.runId, work.runId), eq(agentRunItems.item, item), eq(agentRunItems.status, "pending")),
      )
      .returning({ item: agentRunItems.item });
    if (updated.length === 0) return;
    await tx
      .update(agentRunLogs)
      .set({
        itemsDone: sql`${agentRunLogs.itemsDone} + ${status === "done" ? 1 : 0}`,
        itemsFailed: sql`${agentRunLogs.itemsFailed} + ${status === "failed" ? 1 : 0}`,
        itemsSkipped: sql`${agentRunLogs.itemsSkipped} + ${status === "skipped" ? 1 : 0}`,
        tasksCreated: sql`${agentRunLogs.tasksCreated} + ${created.tasks}`,
        projectsCreated: sql`${agentRunLogs.projectsCreated} + ${created.projects}`,
        notesCreated: sql`${agentRunLogs.notesCreated} + ${created.notes}`,
        eventsCreated: sql`${agentRunLogs.eventsCreated} + ${created.events}`,
        updatedAt: new Date(),
      })
      .where(eq(agentRunLogs.id, work.runId));
  });
  work.ctx.metrics.counter("agent_items_total", "Agent items processed", ["status"]).inc({ status });
}
