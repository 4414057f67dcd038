import { eq } from "drizzle-orm";
import { conflict, unavailable } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import { findConfig } from "./configs";
import type { AgentContext } from "./context";
import { assertRunAllowed, runUsage, withUserLock } from "./limits";
import type { TriggerInput } from "./model";
import { logRunQueued, recordRunEnd } from "./run-outcome";
import { agentRunLogs } from "./tables";
import { typeFor } from "./validate";

/**
 * The device a run is bound to: the one named, else the configuration's, else the user's only
 * connected device. Every call of the run goes there and nowhere else: another device of the same
 * user has other files, and writing to it would scatter the results.
 */
async function chooseDevice(
  ctx: Pick<AgentContext, "rpc">,
  userId: string,
  named: string | undefined,
  configured: string | null,
): Promise<string> {
  const chosen = named ?? configured;
  if (chosen) return chosen;
  const devices = await ctx.rpc.devices(userId).catch(() => {
    throw unavailable("rpc_unavailable", "connected devices cannot be listed right now; name device_id or retry");
  });
  const ids = [...new Set(devices.map((device) => device.deviceId))];
  if (ids.length === 1) return ids[0] as string;
  if (ids.length === 0) throw conflict("device_offline", "no device is connected; connect one or name device_id");
  throw conflict("device_ambiguous", `${ids.length} devices are connected; name the one to use in device_id`);
}

/**
 * Queues a run of one of the user's configurations, bound to one device. The daily and concurrent limits are counted
 * and the run row inserted under the user's lock, so concurrent triggers on any replicas cannot
 * overshoot them; the job goes on the queue after the row is committed.
 */
export async function triggerRun({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, TriggerInput>): Promise<{ run_id: string; status: "queued"; device_id: string }> {
  const config = await findConfig(ctx, user.userId, input.config_id);
  typeFor(config.type, user);
  const deviceId = await chooseDevice(ctx, user.userId, input.device_id, config.deviceId);
  const run = await withUserLock(ctx.db, user.userId, async (tx) => {
    assertRunAllowed(user.tier, await runUsage(tx, user.userId));
    const [row] = await tx
      .insert(agentRunLogs)
      .values({ userId: user.userId, configId: config.id, type: config.type, config: config.config, deviceId })
      .returning();
    return row as typeof agentRunLogs.$inferSelect;
  });
  const runId = run.id;
  try {
    await ctx.queue.add(runId, { runId, userId: user.userId });
  } catch (error) {
    ctx.logger.error({ err: error, run_id: runId, user_id: user.userId }, "could not queue agent run");
    const [failed] = await ctx.db
      .update(agentRunLogs)
      .set({
        status: "failed",
        errorCode: "queue_unavailable",
        errorMessage: "the run could not be queued",
        finishedAt: new Date(),
      })
      .where(eq(agentRunLogs.id, runId))
      .returning();
    if (failed) recordRunEnd(ctx, failed);
    throw unavailable("queue_unavailable", "agent runs cannot be queued right now; try again shortly");
  }
  logRunQueued(ctx, run);
  ctx.metrics.counter("agent_runs_triggered_total", "Agent runs queued", ["type"]).inc({ type: config.type });
  return { run_id: runId, status: "queued", device_id: deviceId };
}
