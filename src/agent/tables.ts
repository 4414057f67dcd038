import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

export const agent = pgSchema("agent");

const created = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updated = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();

/**
 * The monolith's `local_agent_configs` and `cloud_agent_configs` as one table with a `kind` column:
 * one id space for `/configs/:id`, one per-user count for the tier limit, one CRUD path.
 */
export const agentConfigs = agent.table(
  "agent_configs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: text("user_id").notNull(),
    /** A registry type name (`filesystem`, `task_batch`, ...). */
    type: text("type").notNull(),
    /** Copied from the registry: `local` agents read the device, `cloud` agents read their own inputs. */
    kind: text("kind").notNull(),
    name: text("name").notNull(),
    /** The device its runs read and write unless a trigger names another; null: decided per trigger. */
    deviceId: text("device_id"),
    /** Validated against the type's zod schema on every write, stored with defaults applied. */
    config: jsonb("config").notNull(),
    createdAt: created(),
    updatedAt: updated(),
  },
  (table) => [
    index("agent_configs_user_idx").on(table.userId, table.createdAt),
    check("agent_configs_kind_check", sql`${table.kind} in ('local', 'cloud')`),
  ],
);

/** One row per run (the monolith's `agent_run_logs`): status, counters and the final error. */
export const agentRunLogs = agent.table(
  "agent_run_logs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: text("user_id").notNull(),
    /** Null once the configuration is deleted; the run's history stays. */
    configId: uuid("config_id").references(() => agentConfigs.id, { onDelete: "set null" }),
    type: text("type").notNull(),
    /** The configuration as it was when triggered: later edits do not change a running job. */
    config: jsonb("config").notNull(),
    /**
     * `queued` -> `running` (<-> `paused`) -> `succeeded` (every item done or skipped),
     * `completed_with_errors` (some items failed), `failed` or `cancelled`.
     */
    status: text("status").notNull().default("queued"),
    /** The one device every call of the run goes to; null only for runs from before runs had one. */
    deviceId: text("device_id"),
    /** Why the run is paused or how it ended (`device_offline`, `items_failed`, `cancelled`, ...). */
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    /** True once the item list is stored, so a retried job does not list the directory again. */
    listed: boolean("listed").notNull().default(false),
    itemsTotal: integer("items_total").notNull().default(0),
    itemsDone: integer("items_done").notNull().default(0),
    itemsFailed: integer("items_failed").notNull().default(0),
    itemsSkipped: integer("items_skipped").notNull().default(0),
    tasksCreated: integer("tasks_created").notNull().default(0),
    projectsCreated: integer("projects_created").notNull().default(0),
    notesCreated: integer("notes_created").notNull().default(0),
    eventsCreated: integer("events_created").notNull().default(0),
    /** How many times a worker has started this run (crash recovery and retries add one). */
    starts: integer("starts").notNull().default(0),
    instanceId: text("instance_id"),
    cancelRequestedAt: timestamp("cancel_requested_at", { withTimezone: true }),
    createdAt: created(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    updatedAt: updated(),
  },
  (table) => [
    index("agent_run_logs_user_idx").on(table.userId, table.createdAt),
    // The reconciler's scan: only the few active runs, whatever the history holds.
    index("agent_run_logs_active_idx")
      .on(table.createdAt)
      .where(sql`${table.status} in ('queued', 'running', 'paused')`),
    check(
      "agent_run_logs_status_check",
      sql`${table.status} in ('queued', 'running', 'paused', 'succeeded', 'completed_with_errors', 'failed', 'cancelled')`,
    ),
  ],
);

/** The files (or documents) of a run and what became of each; makes retries resume, not restart. */
export const agentRunItems = agent.table(
  "agent_run_items",
  {
    runId: uuid("run_id")
      .notNull()
      .references(() => agentRunLogs.id, { onDelete: "cascade" }),
    /** A device path, or `doc:<index>` for a cloud agent's documents. */
    item: text("item").notNull(),
    size: integer("size").notNull().default(0),
    status: text("status").notNull().default("pending"),
    category: text("category"),
    /** Entities written for this item, by kind. */
    created: jsonb("created"),
    error: text("error"),
    updatedAt: updated(),
  },
  (table) => [
    primaryKey({ columns: [table.runId, table.item] }),
    index("agent_run_items_status_idx").on(table.runId, table.status),
  ],
);

/** The run's log: lifecycle changes and per-item failures, shown by `GET /runs/:id`. */
export const agentRunEvents = agent.table(
  "agent_run_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    runId: uuid("run_id")
      .notNull()
      .references(() => agentRunLogs.id, { onDelete: "cascade" }),
    level: text("level").notNull(),
    message: text("message").notNull(),
    item: text("item"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("agent_run_events_run_idx").on(table.runId, table.id)],
);

/** A setup conversation: the draft configuration and the messages so far, kept between requests. */
export const agentJourneys = agent.table(
  "agent_journeys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: text("user_id").notNull(),
    type: text("type").notNull(),
    /** `collecting` -> `confirming` (draft valid) -> `completed` | `abandoned`. */
    status: text("status").notNull().default("collecting"),
    draft: jsonb("draft").notNull(),
    messages: jsonb("messages").notNull(),
    configId: uuid("config_id"),
    createdAt: created(),
    updatedAt: updated(),
  },
  (table) => [index("agent_journeys_user_idx").on(table.userId)],
);
