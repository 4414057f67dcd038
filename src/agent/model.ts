import { z } from "zod";
import { JourneyConfig, JourneyView } from "../protocol";
import { named } from "../shared/contract";
import { Tier } from "../shared/tiers";

const TypeName = z.string().trim().min(1).max(64);
const ConfigBody = z.record(z.string(), z.unknown());
/** A device id as the app sends it in `hello` (same bounds). */
const DeviceId = z.string().min(1).max(128);

export const CanCreateInput = z.object({ type: TypeName }).strict();
export type CanCreateInput = z.infer<typeof CanCreateInput>;

export const CreateConfigInput = z
  .object({
    type: TypeName,
    name: z.string().trim().min(1).max(120).optional(),
    config: ConfigBody,
    /** The device its runs use unless a trigger names another. */
    device_id: DeviceId.optional(),
  })
  .strict();
export type CreateConfigInput = z.infer<typeof CreateConfigInput>;

export const UpdateConfigInput = z
  .object({
    name: z.string().trim().min(1).max(120).optional(),
    config: ConfigBody.optional(),
    /** null: no device of its own any more. */
    device_id: DeviceId.nullable().optional(),
  })
  .strict()
  .refine(
    (value) => value.name !== undefined || value.config !== undefined || value.device_id !== undefined,
    "nothing to update",
  );
export type UpdateConfigInput = z.infer<typeof UpdateConfigInput>;

export const TriggerInput = z
  .object({
    config_id: z.string().min(1).max(64),
    /** The device the run reads and writes; default: the configuration's, else the only one connected. */
    device_id: DeviceId.optional(),
  })
  .strict();
export type TriggerInput = z.infer<typeof TriggerInput>;

export const ListRunsQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    /** The `created_at` of the last run of the previous page. */
    before: z.iso
      .datetime({ offset: true })
      // Year 0 parses in JavaScript, but PostgreSQL refuses it (a 500 rather than this 422).
      .refine((value) => new Date(value).getUTCFullYear() >= 1, "dates before year 1 are not supported")
      .optional(),
    config_id: z.string().max(64).optional(),
  })
  .strict();
export type ListRunsQuery = z.infer<typeof ListRunsQuery>;

export const JourneyStartInput = z
  .object({
    agent_type: TypeName.optional(),
    /** @deprecated The same as `agent_type`, accepted until API v2 (chat instances still queue it). */
    type: TypeName.optional(),
  })
  .strict()
  .refine((value) => value.agent_type !== undefined || value.type !== undefined, "agent_type is required");
export type JourneyStartInput = z.infer<typeof JourneyStartInput>;
/** The agent type a journey start names, under either field name. */
export const agentTypeOf = (input: JourneyStartInput): string => input.agent_type ?? input.type ?? "";

export const JourneyMessageInput = z
  .object({
    journey_id: z.string().min(1).max(64),
    text: z.string().trim().min(1).max(4000).optional(),
    /** Accepts the proposed configuration (also understood from `text`, e.g. "yes, create it"). */
    confirm: z.boolean().optional(),
  })
  .strict()
  .refine((value) => value.text !== undefined || value.confirm !== undefined, "text or confirm is required");
export type JourneyMessageInput = z.infer<typeof JourneyMessageInput>;

export const RUN_STATUSES = [
  "queued",
  "running",
  "paused",
  "succeeded",
  "completed_with_errors",
  "failed",
  "cancelled",
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const ACTIVE_RUN_STATUSES: RunStatus[] = ["queued", "running", "paused"];
export const TERMINAL_RUN_STATUSES: RunStatus[] = ["succeeded", "completed_with_errors", "failed", "cancelled"];
export const isTerminal = (status: string) => (TERMINAL_RUN_STATUSES as string[]).includes(status);

/** What the queue carries: ids only, the run row holds the rest. */
export const RunJob = z.object({ runId: z.string(), userId: z.string() });
export type RunJob = z.infer<typeof RunJob>;

/** A configuration as `GET /configs/:id` shows it. */
/** A configuration as the API shows it; the same shape a completed journey returns (src/protocol). */
export const AgentConfig = named("AgentConfig", JourneyConfig);

export const AgentConfigList = named("AgentConfigList", z.object({ configs: z.array(AgentConfig) }));

export const AgentCatalog = named(
  "AgentCatalog",
  z.object({
    agents: z.array(
      z.object({
        type: z.string(),
        name: z.string(),
        description: z.string(),
        kind: z.string(),
        min_tier: Tier,
        /** Whether the caller's tier may use it. */
        available: z.boolean().optional(),
        /** JSON Schema of this type's `config`. */
        config_schema: z.unknown(),
      }),
    ),
  }),
);

export const CanCreateResult = named(
  "CanCreateResult",
  z.object({
    allowed: z.boolean(),
    limit: z.number(),
    used: z.number(),
    reason: z.enum(["tier_insufficient", "config_limit_reached"]).optional(),
  }),
);

export const TriggerResult = named(
  "TriggerResult",
  z.object({ run_id: z.string(), status: z.literal("queued"), device_id: z.string() }),
);

export const Run = named(
  "Run",
  z.object({
    id: z.string(),
    config_id: z.string().nullable(),
    type: z.string(),
    device_id: z.string().nullable(),
    status: z.string(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    progress: z.object({ total: z.number(), done: z.number(), failed: z.number(), skipped: z.number() }),
    counts: z.object({ tasks: z.number(), projects: z.number(), notes: z.number(), events: z.number() }),
    cancel_requested: z.boolean(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  }),
);

export const RunPage = named(
  "RunPage",
  z.object({
    runs: z.array(Run),
    /** Pass as `before` for the next page; null on the last. */
    next_before: z.string().nullable(),
  }),
);

/** One run with its log (the latest entries, oldest first). */
export const RunDetail = named(
  "RunDetail",
  Run.extend({
    log: z.array(z.object({ at: z.string(), level: z.string(), message: z.string(), item: z.string().optional() })),
  }),
);

/** A journey turn's answer (`JourneyResponse`): the protocol's view, plus the field older clients read. */
export const Journey = named(
  "Journey",
  JourneyView.extend({
    /** @deprecated The same as `agent_type`. */
    type: z.string(),
  }),
);

// Wire names of the request models.
named("CanCreateInput", CanCreateInput);
named("CreateConfigInput", CreateConfigInput);
named("UpdateConfigInput", UpdateConfigInput);
named("TriggerInput", TriggerInput);
named("JourneyStartInput", JourneyStartInput);
named("JourneyMessageInput", JourneyMessageInput);
