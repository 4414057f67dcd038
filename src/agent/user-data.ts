import { and, asc, eq, inArray, notInArray, sql } from "drizzle-orm";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import type { AgentContext } from "./context";
import { TERMINAL_RUN_STATUSES } from "./model";
import { markCancelled, runView } from "./runs";
import { agentConfigs, agentJourneys, agentRunItems, agentRunLogs } from "./tables";

/** How long an erasure waits for the user's running jobs to notice their cancellation. */
const CANCEL_WAIT_MS = 10_000;

/**
 * Erases everything agent holds of a user: active runs are cancelled first, as `POST
 * /runs/:id/cancel` does, and given time to stop (a job still writing after its rows are gone
 * would only fail), then runs with their items and log, journeys and configurations. Idempotent.
 */
export async function eraseUser(ctx: AgentContext, userId: string): Promise<void> {
  await cancelActiveRuns(ctx, userId);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(agentRunLogs).where(eq(agentRunLogs.userId, userId));
    await tx.delete(agentJourneys).where(eq(agentJourneys.userId, userId));
    await tx.delete(agentConfigs).where(eq(agentConfigs.userId, userId));
  });
}

async function cancelActiveRuns(ctx: AgentContext, userId: string): Promise<void> {
  const active = () =>
    ctx.db
      .select({ id: agentRunLogs.id, status: agentRunLogs.status })
      .from(agentRunLogs)
      .where(and(eq(agentRunLogs.userId, userId), notInArray(agentRunLogs.status, TERMINAL_RUN_STATUSES)));
  const runs = await active();
  if (runs.length === 0) return;
  await ctx.db
    .update(agentRunLogs)
    .set({ cancelRequestedAt: sql`coalesce(${agentRunLogs.cancelRequestedAt}, now())`, updatedAt: new Date() })
    .where(
      inArray(
        agentRunLogs.id,
        runs.map((run) => run.id),
      ),
    );
  for (const run of runs) {
    if (run.status === "queued" && (await ctx.queue.remove(run.id).catch(() => false))) {
      await markCancelled(ctx, run.id);
    } else {
      await ctx.bus.publish(ctx.keys.agentRunCancel(run.id), "cancel").catch(() => 0);
    }
  }
  const deadline = Date.now() + CANCEL_WAIT_MS;
  let left = await active();
  while (left.length > 0 && Date.now() < deadline) {
    await Bun.sleep(100);
    left = await active();
  }
  // Nobody answered (the job was lost, its replica is gone): the rows go anyway; a job that
  // turns up later finds no run and ends at once.
  for (const run of left) await markCancelled(ctx, run.id);
  ctx.logger.info({ user_id: userId, runs: runs.length }, "runs of a deleted account cancelled");
}

/** The user's configurations, runs (with their items) and setup journeys. */
export async function exportUser(ctx: AgentContext, userId: string) {
  const configs = await ctx.db
    .select()
    .from(agentConfigs)
    .where(eq(agentConfigs.userId, userId))
    .orderBy(asc(agentConfigs.createdAt));
  const runs = await ctx.db
    .select()
    .from(agentRunLogs)
    .where(eq(agentRunLogs.userId, userId))
    .orderBy(asc(agentRunLogs.createdAt));
  const items = runs.length
    ? await ctx.db
        .select()
        .from(agentRunItems)
        .where(
          inArray(
            agentRunItems.runId,
            runs.map((run) => run.id),
          ),
        )
    : [];
  const journeys = await ctx.db
    .select()
    .from(agentJourneys)
    .where(eq(agentJourneys.userId, userId))
    .orderBy(asc(agentJourneys.createdAt));
  return {
    configs: configs.map((row) => ({
      id: row.id,
      type: row.type,
      kind: row.kind,
      name: row.name,
      device_id: row.deviceId,
      config: row.config,
      created_at: row.createdAt.toISOString(),
      updated_at: row.updatedAt.toISOString(),
    })),
    runs: runs.map((row) => ({
      ...runView(row),
      config: row.config,
      items: items
        .filter((item) => item.runId === row.id)
        .map((item) => ({
          item: item.item,
          status: item.status,
          category: item.category,
          created: item.created,
          error: item.error,
        })),
    })),
    journeys: journeys.map((row) => ({
      id: row.id,
      type: row.type,
      status: row.status,
      draft: row.draft,
      messages: row.messages,
      config_id: row.configId,
      created_at: row.createdAt.toISOString(),
    })),
  };
}

/** Agent's consumers of account deletions and export requests (group "agent"). */
export function startAgentUserData(ctx: AgentContext): Promise<UserDataConsumers> {
  return startUserDataConsumers(ctx.platform, ctx.logger, {
    service: "agent",
    erase: (userId) => eraseUser(ctx, userId),
    export: (userId) => exportUser(ctx, userId),
  });
}
