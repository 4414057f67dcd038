import { eq } from "drizzle-orm";
import { unavailable } from "../shared/errors";
import { findConfig } from "./configs";
import type { VerbArgs } from "./context";
import { assertRunAllowed, runUsage, withUserLock } from "./limits";
import type { TriggerInput } from "./model";
import { agentRunLogs } from "./tables";
import { typeFor } from "./validate";

/**
 * Queues a run of one of the user's configurations. The daily and concurrent limits are counted
 * and the run row inserted under the user's lock, so concurrent triggers on any replicas cannot
 * overshoot them; the job goes on the queue after the row is committed.
 */
export async function triggerRun({
  ctx,
  user,
  input,
}: VerbArgs<TriggerInput>): Promise<{ run_id: string; status: "queued" }> {
  const config = await findConfig(ctx, user.userId, input.config_id);
  typeFor(config.type, user);
  const runId = await withUserLock(ctx.db, user.userId, async (tx) => {
    assertRunAllowed(user.tier, await runUsage(tx, user.userId));
    const [row] = await tx
      .insert(agentRunLogs)
      .values({ userId: user.userId, configId: config.id, type: config.type, config: config.config })
      .returning({ id: agentRunLogs.id });
    return (row as { id: string }).id;
  });
  try {
    await ctx.queue.add(runId, { runId, userId: user.userId });
  } catch (error) {
    ctx.logger.error({ err: error, run_id: runId }, "could not queue agent run");
    await ctx.db
      .update(agentRunLogs)
      .set({
        status: "failed",
        errorCode: "queue_unavailable",
        errorMessage: "the run could not be queued",
        finishedAt: new Date(),
      })
      .where(eq(agentRunLogs.id, runId));
    throw unavailable("queue_unavailable", "agent runs cannot be queued right now; try again shortly");
  }
  ctx.metrics.counter("agent_runs_triggered_total", "Agent runs queued", ["type"]).inc({ type: config.type });
  return { run_id: runId, status: "queued" };
}
