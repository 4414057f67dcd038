import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import type { Platform } from "../shared/platform";
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
import { cancelRun, getRun, listRuns } from "./runs";
import { triggerRun } from "./trigger";

/** `/api/v1/agents`: thin handlers over the verbs; every route needs a bearer token. */
export function agentRoutes(prefix: string, platform: Platform, ctx: AgentContext) {
  return new Elysia({ prefix })
    .use(authGuard(platform.verifier, platform.logger))
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
      { body: JourneyStartInput },
    )
    .post("/journey/message", ({ user, body }) => journeyMessage({ ctx, user, input: body }), {
      body: JourneyMessageInput,
    });
}
