import { and, count, desc, eq, notInArray, sql } from "drizzle-orm";
import { DeviceCallError } from "../../shared/device-rpc";
import { type Job, JobInterrupted } from "../../shared/jobs";
import type { AgentContext } from "../context";
import { isTerminal, type RunJob, TERMINAL_RUN_STATUSES } from "../model";
import { agentType } from "../registry";
import { logRunStarted, recordRunEnd } from "../run-outcome";
import { markCancelled } from "../runs";
import { agentRunItems, agentRunLogs } from "../tables";
import { boundRpc } from "./device";
import { DEVICE_GONE, DeviceGone, processPending } from "./process-items";
import { RunReporter } from "./reporter";
import { directorySource, documentsSource, InvalidDeviceReply, type Source } from "./source";

/** Ends a run with a status the user can act on (device offline, bad configuration...). */
class RunFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class RunCancelled extends Error {
  override name = "RunCancelled";
}

/** How often a running job looks at its row: cancellation fallback and progress frames. */
const TICK_MS = 500;

/**
 * One queue job = one run. Safe to start again at any point (crash, shutdown, retry): the item
 * list is stored once, finished items are skipped, and device writes carry idempotency keys.
 */
export async function runJob(ctx: AgentContext, job: Job<RunJob>, active: Map<string, AbortController>): Promise<void> {
  const { runId, userId } = job.data;
  const [run] = await ctx.db.select().from(agentRunLogs).where(eq(agentRunLogs.id, runId));
  if (!run || isTerminal(run.status)) return;
  if (run.cancelRequestedAt) return markCancelled(ctx, runId);

  const cancel = new AbortController();
  active.set(runId, cancel);
  const signal = AbortSignal.any([cancel.signal, job.signal]);
  // Every call of the run goes to its own device, through this context.
  const runCtx: AgentContext = { ...ctx, rpc: boundRpc(ctx.rpc, run.deviceId) };
  const reporter = new RunReporter(ctx, runId, userId);
  const timer = setInterval(() => {
    reporter.tick().then(
      (row) => row?.cancelRequestedAt && cancel.abort(new RunCancelled()),
      (error) => ctx.logger.warn({ err: error, run_id: runId }, "run check failed"),
    );
  }, TICK_MS);
  const gauge = ctx.metrics.gauge("agent_runs_active", "Agent runs being worked on by this instance");
  gauge.inc();
  try {
    await ctx.db
      .update(agentRunLogs)
      .set({
        status: "running",
        startedAt: sql`coalesce(${agentRunLogs.startedAt}, now())`,
        starts: sql`${agentRunLogs.starts} + 1`,
        instanceId: ctx.instanceId,
        updatedAt: new Date(),
      })
      .where(eq(agentRunLogs.id, runId));
    logRunStarted(ctx, run, job.attempt);
    await reporter.log("info", run.starts === 0 ? "run started" : `run resumed (start ${run.starts + 1})`);
    await reporter.event("started");

    const type = agentType(run.type);
    if (!type) throw new RunFailure("unknown_type", `agent type ${run.type} no longer exists`);
    const source: Source =
      type.kind === "local"
        ? directorySource(
            { rpc: runCtx.rpc, userId, origin: `agent:${runId}`, deadlineMs: ctx.settings.deviceCallMs },
            run.config,
          )
        : documentsSource(run.configId ?? runId, run.config);
    const kinds = type.entityKinds(run.config as Record<string, unknown>);

    let listed = run.listed;
    const timeouts = new Map<string, number>();
    for (;;) {
      try {
        if (!listed) await listItems(ctx, runId, source, reporter, signal);
        listed = true;
        await processPending({ ctx: runCtx, runId, userId, source, kinds, reporter, signal, timeouts });
        break;
      } catch (error) {
        if (!(error instanceof DeviceGone)) throw error;
        await waitForDevice(runCtx, runId, userId, reporter, signal);
      }
    }
    const outcome = await outcomeOf(ctx, runId);
    await finish(ctx, runId, outcome.status, outcome.error);
    await reporter.log(
      outcome.error ? "warn" : "info",
      outcome.error ? `run finished: ${outcome.error.message}` : "run finished",
    );
    await reporter.event("finished");
  } catch (error) {
    if (cancel.signal.aborted) {
      await markCancelled(ctx, runId);
      await reporter.event("finished");
    } else if (job.signal.aborted) {
      await reporter.log("info", "instance stopping; the run continues elsewhere").catch(() => {});
      throw new JobInterrupted();
    } else if (error instanceof RunFailure || job.attempt >= job.maxAttempts) {
      const failure = toFailure(error);
      if (!(error instanceof RunFailure))
        ctx.logger.error({ err: error, run_id: runId, user_id: userId }, "agent run failed");
      await finish(ctx, runId, "failed", failure);
      await reporter.log("error", failure.message);
      await reporter.event("finished");
    } else {
      await reporter
        .log("warn", `attempt ${job.attempt} failed, retrying: ${(error as Error).message}`)
        .catch(() => {});
      throw error;
    }
  } finally {
    clearInterval(timer);
    active.delete(runId);
    gauge.dec();
  }
}

function toFailure(error: unknown): { code: string; message: string } {
  if (error instanceof RunFailure) return { code: error.code, message: error.message };
  return { code: "internal", message: "the run failed after several attempts" };
}

async function listItems(
  ctx: AgentContext,
  runId: string,
  source: Source,
  reporter: RunReporter,
  signal: AbortSignal,
): Promise<void> {
  let items: Awaited<ReturnType<Source["list"]>>;
  try {
    items = await source.list(signal);
  } catch (error) {
    if (signal.aborted) throw error;
    if (error instanceof DeviceCallError) {
      if (DEVICE_GONE.has(error.reason)) throw new DeviceGone(error.message);
      if (error.reason === "tool_error" || error.reason === "tool_not_supported")
        throw new RunFailure("listing_failed", `the device could not list the directory: ${error.message}`);
      throw new RunFailure(error.reason, `the device could not be reached: ${error.message}`);
    }
    if (error instanceof InvalidDeviceReply) throw new RunFailure("listing_failed", error.message);
    throw error;
  }
  await ctx.db.transaction(async (tx) => {
    for (let start = 0; start < items.length; start += 500) {
      const chunk = items.slice(start, start + 500).map((each) => ({ runId, item: each.item, size: each.size }));
      await tx.insert(agentRunItems).values(chunk).onConflictDoNothing();
    }
    await tx
      .update(agentRunLogs)
      .set({ listed: true, itemsTotal: items.length, updatedAt: new Date() })
      .where(eq(agentRunLogs.id, runId));
  });
  await reporter.log("info", `found ${items.length} item(s) to process`);
}

/** Pauses the run until the device is back (resume) or the grace period ends (fail). */
async function waitForDevice(
  ctx: AgentContext,
  runId: string,
  userId: string,
  reporter: RunReporter,
  signal: AbortSignal,
): Promise<void> {
  const message = "the device went offline; the run is paused until it reconnects";
  await ctx.db
    .update(agentRunLogs)
    .set({ status: "paused", errorCode: "device_offline", errorMessage: message, updatedAt: new Date() })
    .where(eq(agentRunLogs.id, runId));
  await reporter.log("warn", message);
  const deadline = Date.now() + ctx.settings.deviceGraceMs;
  while (Date.now() < deadline) {
    signal.throwIfAborted();
    const online = await ctx.rpc.isOnline(userId).catch(() => false);
    if (online) {
      await ctx.db
        .update(agentRunLogs)
        .set({ status: "running", errorCode: null, errorMessage: null, updatedAt: new Date() })
        .where(eq(agentRunLogs.id, runId));
      await reporter.log("info", "the device is back; resuming");
      await reporter.event("resumed");
      return;
    }
    await Bun.sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
  signal.throwIfAborted();
  throw new RunFailure(
    "device_offline",
    `the device went offline and did not come back within ${Math.round(ctx.settings.deviceGraceMs / 1000)} s; trigger the run again once it is connected (what was already written is not duplicated)`,
  );
}

interface Outcome {
  status: "succeeded" | "completed_with_errors" | "failed";
  error?: { code: string; message: string };
}

/**
 * What the run did, from its items: `succeeded` only when none failed (skipped files are not
 * failures), `failed` when items failed and none was done, `completed_with_errors` otherwise. The
 * error names the counts and the most frequent item error, so "8 reads timed out" reads as such.
 */
async function outcomeOf(ctx: AgentContext, runId: string): Promise<Outcome> {
  const [run] = await ctx.db
    .select({ total: agentRunLogs.itemsTotal, done: agentRunLogs.itemsDone, failed: agentRunLogs.itemsFailed })
    .from(agentRunLogs)
    .where(eq(agentRunLogs.id, runId));
  if (!run || run.failed === 0) return { status: "succeeded" };
  const [main] = await ctx.db
    .select({ error: agentRunItems.error, n: count() })
    .from(agentRunItems)
    .where(and(eq(agentRunItems.runId, runId), eq(agentRunItems.status, "failed")))
    .groupBy(agentRunItems.error)
    .orderBy(desc(count()), agentRunItems.error)
    .limit(1);
  const cause = main?.error ? `; most often (${main.n}×): ${main.error}` : "";
  const message = `${run.failed} of ${run.total} item(s) failed${cause}`;
  return {
    status: run.done === 0 ? "failed" : "completed_with_errors",
    error: { code: "items_failed", message: message.slice(0, 1000) },
  };
}

async function finish(
  ctx: AgentContext,
  runId: string,
  status: Outcome["status"],
  failure?: { code: string; message: string },
): Promise<void> {
  const [row] = await ctx.db
    .update(agentRunLogs)
    .set({
      status,
      errorCode: failure?.code ?? null,
      errorMessage: failure?.message ?? null,
      finishedAt: new Date(),
      updatedAt: new Date(),
    })
    // A run already ended (cancelled while its job was lost) keeps its first ending, counted once.
    .where(and(eq(agentRunLogs.id, runId), notInArray(agentRunLogs.status, TERMINAL_RUN_STATUSES)))
    .returning();
  if (row) recordRunEnd(ctx, row);
}
