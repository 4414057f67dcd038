import { asc, inArray } from "drizzle-orm";
import type { AgentContext } from "./context";
import { ACTIVE_RUN_STATUSES } from "./model";
import { agentRunLogs } from "./tables";

/** Runs looked at per pass; more active runs than this are reached on the next passes. */
const BATCH = 500;

export interface Reconciler {
  /** One pass now, then every `intervalMs`. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * Makes PostgreSQL's word final: a run it holds as queued, running or paused whose job the queue
 * no longer has (Redis restarted empty, a job failed for good while the row could not be written)
 * gets its job back, under its run id. Safe on every replica at once: `ensure` never makes a
 * second job for an id, and a run redone from its stored items writes nothing twice.
 */
export async function reconcileRuns(ctx: Pick<AgentContext, "db" | "queue" | "logger" | "metrics">): Promise<number> {
  const rows = await ctx.db
    .select({ id: agentRunLogs.id, userId: agentRunLogs.userId })
    .from(agentRunLogs)
    .where(inArray(agentRunLogs.status, ACTIVE_RUN_STATUSES))
    .orderBy(asc(agentRunLogs.createdAt))
    .limit(BATCH);
  let restored = 0;
  for (const row of rows) {
    if (await ctx.queue.ensure(row.id, { runId: row.id, userId: row.userId })) restored++;
  }
  if (restored > 0) {
    ctx.logger.warn({ restored }, "agent runs without a job were queued again");
    ctx.metrics.counter("agent_runs_requeued_total", "Active agent runs whose lost job was queued again").inc(restored);
  }
  return restored;
}

export function createReconciler(
  ctx: Pick<AgentContext, "db" | "queue" | "logger" | "metrics">,
  intervalMs: number,
): Reconciler {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const pass = async () => {
    try {
      await reconcileRuns(ctx);
    } catch (error) {
      // PostgreSQL or Redis is down: the next pass tries again.
      ctx.logger.warn({ err: error }, "agent run reconciliation failed");
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void pass().finally(schedule), intervalMs);
  };
  return {
    async start() {
      await pass();
      schedule();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
