import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { DevicePush, DeviceRpc } from "../shared/device-rpc";
import { type JobQueue, openJobQueue } from "../shared/jobs";
import { type JourneyQueue, openJourneyQueue } from "../shared/journey-relay";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { UserDataConsumers } from "../shared/user-data";
import type { AgentContext, AgentModels } from "./context";
import { defaultDependencies } from "./dependencies";
import { createJourneyWorker } from "./journey-relay";
import { migrations } from "./migrations";
import type { RunJob } from "./model";
import { journeyTurnLimit } from "./rate-limits";
import { createReconciler } from "./reconciler";
import { AGENT_PREFIX, agentRoutes } from "./routes";
import { registerRunMetrics } from "./run-outcome";
import { createRunner } from "./runner";
import { startAgentUserData } from "./user-data";

export { AGENT_PREFIX } from "./routes";

/** The agent service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof agentRoutes>;
export const RUN_QUEUE = "agent-runs";

/** What the agent service talks to beyond the platform; tests pass their own. */
export interface AgentDependencies {
  rpc: DeviceRpc;
  push: DevicePush;
  models: AgentModels;
  queue?: JobQueue<RunJob>;
  /** Journey turns relayed from device sockets by the chat service. */
  journeys?: JourneyQueue;
  /** The per-tier limits of the routes and relayed journey turns; defaults to the platform's. */
  limiter?: RateLimiter;
}

/** Builds the agent service from its dependencies; no globals. */
export async function createAgentService(
  platform: Platform,
  overrides: Partial<AgentDependencies> = {},
): Promise<ServiceModule> {
  const { env } = platform;
  const deps = defaultDependencies(platform, overrides);
  const queue =
    overrides.queue ??
    openJobQueue<RunJob>(platform, RUN_QUEUE, {
      attempts: env.AGENT_RUN_ATTEMPTS,
      lockMs: env.AGENT_JOB_LOCK_MS,
      stalledIntervalMs: env.AGENT_STALLED_INTERVAL_MS,
    });
  const journeys =
    overrides.journeys ??
    openJourneyQueue(platform, { lockMs: env.AGENT_JOB_LOCK_MS, stalledIntervalMs: env.AGENT_STALLED_INTERVAL_MS });
  const ctx: AgentContext = {
    platform,
    db: platform.db,
    keys: platform.keys,
    bus: platform.bus,
    logger: platform.logger.child({ module: "agent" }),
    metrics: platform.metrics,
    instanceId: platform.instanceId,
    queue,
    rpc: deps.rpc,
    push: deps.push,
    models: deps.models,
    settings: {
      workerConcurrency: env.AGENT_WORKER_CONCURRENCY,
      itemConcurrency: env.AGENT_ITEM_CONCURRENCY,
      deviceGraceMs: env.AGENT_DEVICE_GRACE_MS,
      deviceCallMs: env.AGENT_DEVICE_CALL_MS,
    },
    limiter: overrides.limiter,
  };
  registerRunMetrics(ctx.metrics);
  const runner = createRunner(ctx);
  const reconciler = createReconciler(ctx, env.AGENT_RECONCILE_INTERVAL_MS);
  const journeyWorker = createJourneyWorker(ctx, journeys, {
    concurrency: env.AGENT_JOURNEY_CONCURRENCY,
    limit: journeyTurnLimit(platform, ctx.limiter),
  });
  let userData: UserDataConsumers | undefined;
  return {
    name: "agent",
    prefix: AGENT_PREFIX,
    plugin: new Elysia({ name: "agent" }).use(agentRoutes(ctx)),
    async start() {
      await migrateService(platform, "agent", migrations);
      await deps.start();
      if (env.AGENT_WORKER) {
        await runner.start();
        journeyWorker.start();
      }
      // Every replica, worker or not: it only puts lost jobs back, and one is enough to do it.
      await reconciler.start();
      // Account deletions and data exports, on every replica (one of each group's consumers takes each event).
      userData = await startAgentUserData(ctx);
    },
    async stop() {
      await userData?.stop();
      reconciler.stop();
      await queue.close();
      await journeys.close();
      await runner.stop();
      await deps.stop();
    },
  };
}
