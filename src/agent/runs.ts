import { and, desc, eq, lt, notInArray, sql } from "drizzle-orm";
import { conflict, notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { AgentContext } from "./context";
import { isTerminal, type ListRunsQuery, TERMINAL_RUN_STATUSES } from "./model";
import { recordRunEnd } from "./run-outcome";
import { agentRunEvents, agentRunLogs } from "./tables";
import { assertId } from "./validate";

type RunRow = typeof agentRunLogs.$inferSelect;

const iso = (value: Date | null) => (value ? value.toISOString() : null);

export const runView = (row: RunRow) => ({
  id: row.id,
  config_id: row.configId,
  type: row.type,
  device_id: row.deviceId,
  status: row.status,
  error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? "" } : null,
  progress: {
    total: row.itemsTotal,
    done: row.itemsDone,
    failed: row.itemsFailed,
    skipped: row.itemsSkipped,
  },
  counts: {
    tasks: row.tasksCreated,
    projects: row.projectsCreated,
    notes: row.notesCreated,
    events: row.eventsCreated,
  },
  cancel_requested: row.cancelRequestedAt !== null,
  created_at: row.createdAt.toISOString(),
  started_at: iso(row.startedAt),
  finished_at: iso(row.finishedAt),
});
export type RunView = ReturnType<typeof runView>;

const LOG_LIMIT = 200;

async function findRun(ctx: Pick<AgentContext, "db">, userId: string, id: string): Promise<RunRow> {
  assertId(id, "agent run");
  const [row] = await ctx.db
    .select()
    .from(agentRunLogs)
    .where(and(eq(agentRunLogs.id, id), eq(agentRunLogs.userId, userId)));
  if (!row) throw notFound("agent run");
  return row;
}

export async function listRuns({ ctx, user, input }: VerbArgs<AgentContext, ListRunsQuery>) {
  const filters = [eq(agentRunLogs.userId, user.userId)];
  if (input.before) filters.push(lt(agentRunLogs.createdAt, new Date(input.before)));
  if (input.config_id) {
    assertId(input.config_id, "agent configuration");
    filters.push(eq(agentRunLogs.configId, input.config_id));
  }
  const rows = await ctx.db
    .select()
    .from(agentRunLogs)
    .where(and(...filters))
    .orderBy(desc(agentRunLogs.createdAt))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return {
    runs: page.map(runView),
    next_before: rows.length > input.limit && last ? last.createdAt.toISOString() : null,
  };
}

/** One run with its log (the latest entries, oldest first). */
export async function getRun({ ctx, user, input }: VerbArgs<AgentContext, { id: string }>) {
  const row = await findRun(ctx, user.userId, input.id);
  const events = await ctx.db
    .select()
    .from(agentRunEvents)
    .where(eq(agentRunEvents.runId, row.id))
    .orderBy(desc(agentRunEvents.id))
    .limit(LOG_LIMIT);
  return {
    ...runView(row),
    log: events.reverse().map((event) => ({
      at: event.at.toISOString(),
      level: event.level,
      message: event.message,
      ...(event.item ? { item: event.item } : {}),
    })),
  };
}

/**
 * Asks a run to stop. A run still waiting in the queue is removed and cancelled here; a running
 * one is told through the bus (every replica listens) and, should that message be lost, notices
 * the flag on its next check of the run row. A run whose job the queue lost (Redis restarted
 * empty) has nobody to hear either, so it is cancelled here too; a replica still working on it
 * regardless stops on the bus message or the flag. A run that already ended is a 409
 * `run_finished`: answering 202 would say a stop was under way when nothing will change.
 */
export async function cancelRun({ ctx, user, input }: VerbArgs<AgentContext, { id: string }>): Promise<RunView> {
  const row = await findRun(ctx, user.userId, input.id);
  if (isTerminal(row.status)) throw conflict("run_finished", `the run already ended (${row.status})`);
  await ctx.db
    .update(agentRunLogs)
    .set({ cancelRequestedAt: sql`coalesce(${agentRunLogs.cancelRequestedAt}, now())`, updatedAt: new Date() })
    .where(eq(agentRunLogs.id, row.id));
  try {
    if (row.status === "queued" && (await ctx.queue.remove(row.id))) {
      await markCancelled(ctx, row.id);
    } else {
      await ctx.bus.publish(ctx.keys.agentRunCancel(row.id), "cancel");
      if ((await ctx.queue.state(row.id)) === "missing") await markCancelled(ctx, row.id);
    }
  } catch (error) {
    // Redis is unreachable: the stored request is enough. Whichever replica starts or holds the
    // run (its job put back by the reconciler if Redis lost it) sees it and cancels the run.
    ctx.logger.warn({ err: error, run_id: row.id }, "cancel recorded; the queue could not be reached");
  }
  return runView(await findRun(ctx, user.userId, row.id));
}

/** Ends a run as cancelled unless it already ended. */
export async function markCancelled(
  ctx: Pick<AgentContext, "db" | "logger" | "metrics">,
  runId: string,
): Promise<void> {
  const ended = await ctx.db
    .update(agentRunLogs)
    .set({
      status: "cancelled",
      errorCode: "cancelled",
      errorMessage: "the run was cancelled",
      finishedAt: new Date(),
      updatedAt: new Date(),
    })
    .where(and(eq(agentRunLogs.id, runId), notInArray(agentRunLogs.status, TERMINAL_RUN_STATUSES)))
    .returning();
  const [row] = ended;
  if (!row) return;
  recordRunEnd(ctx, row);
  await ctx.db.insert(agentRunEvents).values({ runId, level: "info", message: "run cancelled" });
}
