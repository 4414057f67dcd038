import { z } from "zod";

const id = z.string().min(1).max(200).describe("the id the device gave the item");
const projectId = z.string().min(1).max(200).describe("id of the project it belongs to");
const idempotencyKey = z.string().max(200).describe("repeats with the same key create only one item");
const isoDateTime = z.string().max(64).describe("ISO 8601 date or date-time");

const taskFields = {
  title: z.string().min(1).max(500),
  due: isoDateTime.optional(),
  project_id: projectId.optional(),
  notes: z.string().max(10_000).optional(),
};
const projectFields = { name: z.string().min(1).max(300), description: z.string().max(5000).optional() };
const noteFields = {
  title: z.string().min(1).max(500),
  body: z.string().max(50_000),
  project_id: projectId.optional(),
};
const eventFields = {
  title: z.string().min(1).max(500),
  at: isoDateTime,
  end: isoDateTime.optional(),
  project_id: projectId.optional(),
};

const partial = <T extends z.ZodRawShape>(fields: T) => z.object({ id, ...z.object(fields).partial().shape });

/**
 * The device tools of DESIGN.md's table that the chat agent may use (their data lives on the
 * user's device). Names are protocol: add, never rename.
 */
export const DEVICE_TOOLS = {
  task_create: {
    description: "Create a task for the user.",
    input: z.object({ ...taskFields, idempotency_key: idempotencyKey.optional() }),
  },
  task_update: { description: "Change fields of an existing task.", input: partial(taskFields) },
  task_complete: { description: "Mark a task as done.", input: z.object({ id }) },
  task_delete: { description: "Delete a task.", input: z.object({ id }) },
  task_list: {
    description: "List or search the user's tasks.",
    input: z.object({
      query: z.string().max(500).optional(),
      status: z.enum(["open", "done", "all"]).optional(),
      project_id: projectId.optional(),
    }),
  },
  project_create: {
    description: "Create a project.",
    input: z.object({ ...projectFields, idempotency_key: idempotencyKey.optional() }),
  },
  project_update: { description: "Change fields of a project.", input: partial(projectFields) },
  project_list: { description: "List or search projects.", input: z.object({ query: z.string().max(500).optional() }) },
  note_create: {
    description: "Write a new note.",
    input: z.object({ ...noteFields, idempotency_key: idempotencyKey.optional() }),
  },
  note_update: { description: "Change a note's title, body or project.", input: partial(noteFields) },
  note_search: { description: "Search the user's notes.", input: z.object({ query: z.string().min(1).max(500) }) },
  timeline_add_event: {
    description: "Add an event to the user's timeline (calendar).",
    input: z.object({ ...eventFields, idempotency_key: idempotencyKey.optional() }),
  },
  timeline_list: {
    description: "List timeline events in a time range.",
    input: z.object({ from: isoDateTime.optional(), to: isoDateTime.optional() }),
  },
} as const satisfies Record<string, { description: string; input: z.ZodObject }>;

export type DeviceToolName = keyof typeof DEVICE_TOOLS;
export const DEVICE_TOOL_NAMES = Object.keys(DEVICE_TOOLS) as DeviceToolName[];

export const isDeviceTool = (name: string): name is DeviceToolName => Object.hasOwn(DEVICE_TOOLS, name);

/** Tools that create something take an idempotency key; the tool call id is a natural one. */
export const takesIdempotencyKey = (name: DeviceToolName): boolean =>
  "idempotency_key" in DEVICE_TOOLS[name].input.shape;
