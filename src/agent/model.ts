import { z } from "zod";

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

export const JourneyStartInput = z.object({ type: TypeName }).strict();
export type JourneyStartInput = z.infer<typeof JourneyStartInput>;

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
