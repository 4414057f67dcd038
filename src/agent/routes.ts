import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import type { Platform } from "../shared/platform";
import { type RateLimiter, rateLimitByTier } from "../shared/rate-limit";
import { sanitizer } from "../shared/sanitizer";
import { canCreate } from "./can-create";
import { listCatalog } from "./catalog";
import { createConfig, deleteConfig, getConfig, listConfigs, updateConfig } from "./configs";
import type { AgentContext } from "./context";
import { journeyMessage, startJourney } from "./journey";
import {
  CanCreateInput,
  CreateConfigInput,
  JourneyMessageInput,
  JourneyStartInput,
  ListRunsQuery,
  TriggerInput,
  UpdateConfigInput,
} from "./model";
import { journeyRouteLimit } from "./rate-limits";
import { cancelRun, getRun, listRuns } from "./runs";
import { triggerRun } from "./trigger";

/**
 * `/api/v1/agents`: thin handlers over the verbs; every route needs a bearer token and spends the
 * tier's requests/min of the agent service; the journey routes, a model call each, also spend the
 * tighter journey budget. The guard comes before the sanitizer: a caller without a valid token learns
 * nothing about its body.
 */
export function agentRoutes(prefix: string, platform: Platform, ctx: AgentContext, limiter?: RateLimiter) {
  const journeyLimit = journeyRouteLimit(platform, limiter);
  return new Elysia({ prefix })
    .use(authGuard(platform.verifier, platform.logger))
    .use(sanitizer({ maxBodyBytes: platform.env.MAX_BODY_BYTES }))
    .use(rateLimitByTier(platform, "agent", { limiter }))
    .get("/catalog", ({ user }) => listCatalog({ tier: user.tier }))
    .post("/can-create", ({ user, body }) => canCreate({ ctx, user, input: body }), { body: CanCreateInput })
    .get("/configs", ({ user }) => listConfigs({ ctx, user, input: undefined }))
    .post(
      "/configs",
      async ({ user, body, set }) => {
        const created = await createConfig({ ctx, user, input: body });
        set.status = 201;
        return created;
      },
      { body: CreateConfigInput },
    )
    .get("/configs/:id", ({ user, params }) => getConfig({ ctx, user, input: { id: params.id } }))
    .put(
      "/configs/:id",
      ({ user, params, body }) => updateConfig({ ctx, user, input: { id: params.id, changes: body } }),
      {
        body: UpdateConfigInput,
      },
    )
    .delete("/configs/:id", async ({ user, params, set }) => {
      await deleteConfig({ ctx, user, input: { id: params.id } });
      set.status = 204;
    })
    .post(
      "/trigger",
      async ({ user, body, set }) => {
        const run = await triggerRun({ ctx, user, input: body });
        set.status = 202;
        return run;
      },
      { body: TriggerInput },
    )
    .get("/runs", ({ user, query }) => listRuns({ ctx, user, input: query }), { query: ListRunsQuery })
    .get("/runs/:id", ({ user, params }) => getRun({ ctx, user, input: { id: params.id } }))
    .post("/runs/:id/cancel", async ({ user, params, set }) => {
      const run = await cancelRun({ ctx, user, input: { id: params.id } });
      set.status = 202;
      return run;
    })
    .post(
      "/journey/start",
      async ({ user, body, set }) => {
        const journey = await startJourney({ ctx, user, input: body });
        set.status = 201;
        return journey;
      },
      { body: JourneyStartInput, beforeHandle: journeyLimit },
    )
    .post("/journey/message", ({ user, body }) => journeyMessage({ ctx, user, input: body }), {
      body: JourneyMessageInput,
      beforeHandle: journeyLimit,
    });
}
