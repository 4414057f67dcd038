import type { Unsubscribe } from "../../shared/bus/bus";
import type { AgentContext } from "../context";
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
  const prefix = ctx.keys.agentRunCancel("");
  let unsubscribe: Unsubscribe | undefined;
  return {
    async start() {
      unsubscribe = await ctx.bus.psubscribe(ctx.keys.agentRunCancelPattern, (_message, channel) => {
        active.get(channel.slice(prefix.length))?.abort(new RunCancelled());
      });
      ctx.queue.process((job) => runJob(ctx, job, active), { concurrency: ctx.settings.workerConcurrency });
    },
    async stop() {
      await unsubscribe?.();
    },
  };
}
