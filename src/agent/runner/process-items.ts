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

export const DEVICE_GONE = new Set(["device_offline", "device_disconnected", "rpc_unavailable"]);

/**
 * Device calls of one file that may reach their deadline before the file is recorded as failed.
 * A call reaching its deadline mostly means its answer was lost on the way (a Redis outage between
 * the device's chat instance and this replica), so the file waits for the device like after a
 * disconnect; one that times out every time is a broken file, not a gone device.
 */
const MAX_ITEM_TIMEOUTS = 3;

export interface ItemWork {
  ctx: AgentContext;
  runId: string;
  userId: string;
  source: Source;
  kinds: EntityKind[];
  reporter: RunReporter;
  signal: AbortSignal;
  /** Device calls that reached their deadline, by item, across the rounds of one attempt. */
  timeouts: Map<string, number>;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);

/**
 * Processes every pending item of the run with bounded concurrency. Resolves when none is left;
 * throws DeviceGone (remaining items stay pending), the first lane's error, or the abort reason
 * when the signal fires, and in every case only once all lanes have stopped.
 */
export async function processPending(work: ItemWork): Promise<void> {
  const pending = await work.ctx.db
    .select({ item: agentRunItems.item })
    .from(agentRunItems)
    .where(and(eq(agentRunItems.runId, work.runId), eq(agentRunItems.status, "pending")))
    .orderBy(asc(agentRunItems.item));
  const queue = pending.map((row) => row.item);
  // One lane stopping stops them all (their device calls are cancelled, their model calls
  // aborted), and its error waits for them: the retry of a failed attempt, or the next round after
  // the device is back, must not run beside lanes still writing to the device.
  const stop = new AbortController();
  const signal = AbortSignal.any([work.signal, stop.signal]);
  let stopped: { error: unknown } | undefined;
  const lane = async () => {
    for (let item = queue.shift(); item !== undefined && !signal.aborted; item = queue.shift()) {
      try {
        await processItem(work, item, signal);
      } catch (error) {
        // Once stopped, the other lanes' errors are the abort itself.
        if (signal.aborted) return;
        stopped = { error };
        stop.abort(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, work.ctx.settings.itemConcurrency) }, lane));
  work.signal.throwIfAborted();
  if (stopped) throw stopped.error;
}

interface Outcome {
  status: "done" | "failed" | "skipped";
  category?: string;
  created?: Created;
  error?: string;
}

async function processItem(work: ItemWork, item: string, signal: AbortSignal): Promise<void> {
  const started = performance.now();
  try {
    let outcome: Outcome;
    try {
      outcome = await itemOutcome(work, item, signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (deviceGone(work, item, error)) throw new DeviceGone((error as Error).message);
      // One broken file (unreadable, odd model answer, a tool refusing it) is recorded, not fatal.
      outcome = { status: "failed", error: message(error) };
    }
    // Outside the inner try: a database error is no fault of the file. It fails the attempt, which
    // is retried, instead of recording as failed a file whose entities may already be written.
    await finishItem(work, item, outcome.status, outcome);
    if (outcome.status === "failed") await work.reporter.log("warn", `item failed: ${outcome.error}`, item);
  } finally {
    work.ctx.metrics
      .histogram("agent_item_seconds", "Time to process one agent item", [], [0.01, 0.05, 0.1, 0.5, 1, 5, 30])
      .observe((performance.now() - started) / 1000);
  }
}

/** Reads, classifies, extracts and writes one item; throws what the device or the model threw. */
async function itemOutcome(work: ItemWork, item: string, signal: AbortSignal): Promise<Outcome> {
  const { ctx } = work;
  const text = await work.source.read(item, signal);
  if (!text) return { status: "skipped", error: "not a text file" };
  const classification = await classifyItem(ctx.models.classify, text, signal);
  if (!classification.relevant || work.kinds.length === 0) return { status: "done", category: classification.category };
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
  return { status: "done", category: classification.category, created };
}

/** Whether the item must wait for the device (kept pending) rather than be recorded as failed. */
function deviceGone(work: ItemWork, item: string, error: unknown): boolean {
  if (!(error instanceof DeviceCallError)) return false;
  if (DEVICE_GONE.has(error.reason)) return true;
  if (error.reason !== "deadline_exceeded") return false;
  const timeouts = (work.timeouts.get(item) ?? 0) + 1;
  work.timeouts.set(item, timeouts);
  return timeouts < MAX_ITEM_TIMEOUTS;
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
