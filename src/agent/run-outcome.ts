import type { Metrics } from "../shared/metrics";
import type { AgentContext } from "./context";
import type { agentRunLogs } from "./tables";

type RunRow = typeof agentRunLogs.$inferSelect;

export const RUN_OUTCOMES = ["succeeded", "completed_with_errors", "failed", "cancelled"] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** A run may wait in the queue and pause for its device, so its buckets reach two hours. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200];

/** `agent_runs_total{outcome}` and `agent_run_duration_seconds{outcome}`. */
export function runMetrics(metrics: Metrics) {
  return {
    ended: metrics.counter("agent_runs_total", "Agent runs ended, by outcome", ["outcome"]),
    duration: metrics.histogram(
      "agent_run_duration_seconds",
      "Time from trigger to end of an agent run (queue wait and pauses included), by outcome",
      ["outcome"],
      DURATION_BUCKETS,
    ),
  };
}

/**
 * Registers the run metrics with every outcome at zero, when the service is built: a series that
 * appears only with its first failure hides that failure from `rate()`, and alerts read them.
 */
export function registerRunMetrics(metrics: Metrics): void {
  const { ended, duration } = runMetrics(metrics);
  for (const outcome of RUN_OUTCOMES) {
    ended.inc({ outcome }, 0);
    duration.zero({ outcome });
  }
}

/** The fields every log line about a run carries, so one query finds them all. */
const runFields = (row: RunRow) => ({
  run_id: row.id,
  user_id: row.userId,
  device_id: row.deviceId,
  config_id: row.configId,
  type: row.type,
});

export function logRunQueued(ctx: Pick<AgentContext, "logger">, row: RunRow): void {
  ctx.logger.info(runFields(row), "agent run queued");
}

/** `start` counts from 1; above 1 the run was resumed (replica lost, job queued again, retry). */
export function logRunStarted(ctx: Pick<AgentContext, "logger">, row: RunRow, attempt: number): void {
  ctx.logger.info({ ...runFields(row), start: row.starts + 1, attempt }, "agent run started");
}

/**
 * Logs and counts a run that has just ended. Called only by the write that moved the run to its
 * final status, so each run is counted once whichever replica or request ended it. The error
 * message is not logged (an item's error may quote the user's file names): the code says why,
 * and the message is in the run (`GET /agents/runs/:id`, `agent.agent_run_logs.error_message`).
 */
export function recordRunEnd(ctx: Pick<AgentContext, "logger" | "metrics">, row: RunRow): void {
  const outcome = row.status as RunOutcome;
  const ms = Math.max(0, (row.finishedAt ?? new Date()).getTime() - row.createdAt.getTime());
  const { ended, duration } = runMetrics(ctx.metrics);
  ended.inc({ outcome });
  duration.observe({ outcome }, ms / 1000);
  const fields = {
    ...runFields(row),
    outcome,
    error_code: row.errorCode,
    items: { total: row.itemsTotal, done: row.itemsDone, failed: row.itemsFailed, skipped: row.itemsSkipped },
    starts: row.starts,
    ms,
  };
  if (outcome === "failed" || outcome === "completed_with_errors") ctx.logger.warn(fields, "agent run ended");
  else ctx.logger.info(fields, "agent run ended");
}
