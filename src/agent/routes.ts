import { Elysia } from "elysia";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { canCreate } from "./can-create";
import { listCatalog } from "./catalog";
import { createConfig, deleteConfig, getConfig, listConfigs, updateConfig } from "./configs";
import type { AgentContext } from "./context";
import { journeyMessage, journeyResponse, startJourney } from "./journey";
import {
  AgentCatalog,
  AgentConfig,
  AgentConfigList,
  CanCreateInput,
  CanCreateResult,
  CreateConfigInput,
  Journey,
  JourneyMessageInput,
  JourneyStartInput,
  ListRunsQuery,
  Run,
  RunDetail,
  RunPage,
  TriggerInput,
  TriggerResult,
  UpdateConfigInput,
} from "./model";
import { journeyRouteLimit } from "./rate-limits";
import { cancelRun, getRun, listRuns } from "./runs";
import { triggerRun } from "./trigger";

/** Where Traefik sends the agent service's traffic; literal, so typed clients know every path. */
export const AGENT_PREFIX = "/api/v1/agents" as const;

/** A configuration or run id in the path: anything but a UUID is a 404, as for another user's. */
const ID = [404] as const;

/**
 * `/api/v1/agents`: thin handlers over the verbs; every route needs a bearer token and spends the
 * tier's requests/min of the agent service; the journey routes, a model call each, also spend the
 * tighter journey budget.
 */
export function agentRoutes(ctx: AgentContext) {
  const { platform, limiter } = ctx;
  const journeyLimit = journeyRouteLimit(platform, limiter);
  return new Elysia({ prefix: AGENT_PREFIX, tags: ["agents"] })
    .use(protectedRoutes({ platform, service: "agent", logger: ctx.logger, limiter }))
    .get("/catalog", ({ user }) => listCatalog({ ctx, user, input: undefined }), {
      response: responses({ 200: AgentCatalog }, ...SIGNED_IN),
      detail: { summary: "The agent types, with the JSON Schema of each configuration" },
    })
    .post("/can-create", ({ user, body }) => canCreate({ ctx, user, input: body }), {
      body: CanCreateInput,
      response: responses({ 200: CanCreateResult }, ...SIGNED_IN, ...JSON_BODY),
      detail: { summary: "Whether one more configuration of a type may be created now" },
    })
    .get("/configs", ({ user }) => listConfigs({ ctx, user, input: undefined }), {
      response: responses({ 200: AgentConfigList }, ...SIGNED_IN),
      detail: { summary: "The caller's agent configurations, newest first" },
    })
    .post(
      "/configs",
      async ({ user, body, set }) => {
        const created = await createConfig({ ctx, user, input: body });
        set.status = 201;
        return created;
      },
      {
        body: CreateConfigInput,
        response: responses({ 201: AgentConfig }, ...SIGNED_IN, ...JSON_BODY, 403),
        detail: { summary: "Create a configuration (403 past the tier's limit or below its tier)" },
      },
    )
    .get("/configs/:id", ({ user, params }) => getConfig({ ctx, user, input: { id: params.id } }), {
      response: responses({ 200: AgentConfig }, ...SIGNED_IN, ...ID),
      detail: { summary: "One configuration" },
    })
    .put(
      "/configs/:id",
      ({ user, params, body }) => updateConfig({ ctx, user, input: { id: params.id, changes: body } }),
      {
        body: UpdateConfigInput,
        response: responses({ 200: AgentConfig }, ...SIGNED_IN, ...JSON_BODY, ...ID),
        detail: { summary: "Change a configuration's name, settings or device" },
      },
    )
    .delete(
      "/configs/:id",
      async ({ user, params, set }) => {
        await deleteConfig({ ctx, user, input: { id: params.id } });
        set.status = 204;
      },
      {
        response: responses({ 204: NoContent }, ...SIGNED_IN, ...ID),
        detail: { summary: "Delete a configuration" },
      },
    )
    .post(
      "/trigger",
      async ({ user, body, set }) => {
        const run = await triggerRun({ ctx, user, input: body });
        set.status = 202;
        return run;
      },
      {
        body: TriggerInput,
        // 409: no device or several devices connected and none named; 429 also the daily run quota.
        response: responses({ 202: TriggerResult }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
        detail: { summary: "Start a run of a configuration on a device" },
      },
    )
    .get("/runs", ({ user, query }) => listRuns({ ctx, user, input: query }), {
      query: ListRunsQuery,
      response: responses({ 200: RunPage }, ...SIGNED_IN, 404, 422),
      detail: { summary: "The caller's runs, newest first (`before` pages back)" },
    })
    .get("/runs/:id", ({ user, params }) => getRun({ ctx, user, input: { id: params.id } }), {
      response: responses({ 200: RunDetail }, ...SIGNED_IN, ...ID),
      detail: { summary: "One run with its log" },
    })
    .post(
      "/runs/:id/cancel",
      async ({ user, params, set }) => {
        const run = await cancelRun({ ctx, user, input: { id: params.id } });
        set.status = 202;
        return run;
      },
      {
        // No body is read, but one that is sent must still be JSON. 409: the run already ended.
        response: responses({ 202: Run }, ...SIGNED_IN, ...ID, 400, 409, 413, 415),
        detail: { summary: "Ask a run to stop (409 `run_finished` once it has ended)" },
      },
    )
    .post(
      "/journey/start",
      async ({ user, body, set }) => {
        const journey = await startJourney({ ctx, user, input: body });
        set.status = 201;
        return journeyResponse(journey);
      },
      {
        body: JourneyStartInput,
        beforeHandle: journeyLimit,
        response: responses({ 201: Journey }, ...SIGNED_IN, ...JSON_BODY, 403, 502),
        detail: { summary: "Start setting up an agent by conversation" },
      },
    )
    .post(
      "/journey/message",
      async ({ user, body }) => journeyResponse(await journeyMessage({ ctx, user, input: body })),
      {
        body: JourneyMessageInput,
        beforeHandle: journeyLimit,
        response: responses({ 200: Journey }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409, 502),
        detail: { summary: "One user message of a journey, or `confirm: true` to create its configuration" },
      },
    );
}
