import type { Unsubscribe } from "../../shared/bus/bus";
import { type Job, JobInterrupted } from "../../shared/jobs";
import type { AgentContext } from "../context";
import type { RunJob } from "../model";
import { RunCancelled, runJob } from "./run-job";

export interface Runner {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * This replica's share of the run queue. Cancellations arrive on one pattern subscription per
 * instance (not one per run) and abort the run if it is being worked on here.
 */
export function createRunner(ctx: AgentContext): Runner {
  const active = new Map<string, AbortController>();
  const working = new Map<string, Promise<void>>();
  // A run's job lost with Redis and queued again may come back to the replica still working on
  // it: the new job holds its place in the queue until that work ends, instead of a second copy.
  const handle = async (job: Job<RunJob>) => {
    const current = working.get(job.data.runId);
    if (current) {
      const failed = await current.then(
        () => undefined,
        (error: unknown) => error ?? new Error("run failed"),
      );
      if (job.signal.aborted) throw new JobInterrupted();
      // The first job is gone: its retry, if it needs one, is this job's.
      if (failed) throw failed;
      return;
    }
    const work = runJob(ctx, job, active);
    working.set(job.data.runId, work);
    try {
      await work;
    } finally {
      working.delete(job.data.runId);
    }
  };
  const prefix = ctx.keys.agentRunCancel("");
  let unsubscribe: Unsubscribe | undefined;
  return {
    async start() {
      unsubscribe = await ctx.bus.psubscribe(ctx.keys.agentRunCancelPattern, (_message, channel) => {
        active.get(channel.slice(prefix.length))?.abort(new RunCancelled());
      });
      ctx.queue.process(handle, { concurrency: ctx.settings.workerConcurrency });
    },
    async stop() {
      await unsubscribe?.();
    },
  };
}
