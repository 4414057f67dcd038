import { z } from "zod";

/*
 * The device tool contract: every tool a service may ask a device to run, with the arguments the
 * service sends and the result it reads. The chat agent's tool definitions, the agent runner's
 * reads of listings and files, `GET /api/v1/ws/device/tools.json`, docs/device-tools.md and the
 * SDK's handler types all come from these schemas. Names are protocol: add, never rename.
 */

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

/*
 * Results are what a device sends back. Items may carry more fields than these (a device's own
 * metadata); the services read only the ones named here.
 */
export const ItemRef = z.looseObject({ id }).describe("the item written, at least its id");
export const Task = z.looseObject({
  id,
  ...taskFields,
  status: z.enum(["open", "done"]),
});
export const Project = z.looseObject({ id, ...projectFields });
export const Note = z.looseObject({
  id,
  title: noteFields.title,
  body: noteFields.body.optional().describe("the whole body, or an excerpt around the match"),
  project_id: projectId.optional(),
});
export const TimelineEvent = z.looseObject({ id, ...eventFields });

/** One page of `fs_list_dir`; `next_cursor` asks for the next one. */
export const ListPage = z.object({
  entries: z.array(
    z.looseObject({
      path: z.string().min(1).max(4096),
      type: z.enum(["file", "dir"]),
      size: z.number().nonnegative().optional(),
    }),
  ),
  next_cursor: z.string().max(4096).nullish(),
});
export type ListPage = z.infer<typeof ListPage>;

/** `fs_read_file`: text as utf8, anything else as base64 (which the agents skip). */
export const FileContent = z.object({
  content: z.string(),
  encoding: z.enum(["utf8", "base64"]).default("utf8"),
  truncated: z.boolean().default(false),
});
export type FileContent = z.infer<typeof FileContent>;

/** Which service calls a tool: the chat agent (`origin: "chat"`) or agent runs (`origin: "agent:<run id>"`). */
export type DeviceToolCaller = "chat" | "agent";

interface ToolSpec {
  description: string;
  args: z.ZodObject;
  result: z.ZodType;
  callers: readonly DeviceToolCaller[];
}

const tool = <A extends z.ZodObject, R extends z.ZodType, const C extends readonly DeviceToolCaller[]>(
  description: string,
  args: A,
  result: R,
  callers: C,
) => ({ description, args, result, callers });

const CHAT = ["chat"] as const;
const BOTH = ["chat", "agent"] as const;

export const DEVICE_TOOL_CONTRACT = {
  task_create: tool(
    "Create a task for the user.",
    z.object({ ...taskFields, idempotency_key: idempotencyKey.optional() }),
    ItemRef,
    BOTH,
  ),
  task_update: tool("Change fields of an existing task.", partial(taskFields), ItemRef, CHAT),
  task_complete: tool("Mark a task as done.", z.object({ id }), ItemRef, CHAT),
  task_delete: tool("Delete a task.", z.object({ id }), ItemRef, CHAT),
  task_list: tool(
    "List or search the user's tasks.",
    z.object({
      query: z.string().max(500).optional(),
      status: z.enum(["open", "done", "all"]).optional(),
      project_id: projectId.optional(),
    }),
    z.object({ tasks: z.array(Task) }),
    CHAT,
  ),
  project_create: tool(
    "Create a project.",
    z.object({ ...projectFields, idempotency_key: idempotencyKey.optional() }),
    ItemRef,
    BOTH,
  ),
  project_update: tool("Change fields of a project.", partial(projectFields), ItemRef, CHAT),
  project_list: tool(
    "List or search projects.",
    z.object({ query: z.string().max(500).optional() }),
    z.object({ projects: z.array(Project) }),
    CHAT,
  ),
  note_create: tool(
    "Write a new note.",
    z.object({ ...noteFields, idempotency_key: idempotencyKey.optional() }),
    ItemRef,
    BOTH,
  ),
  note_update: tool("Change a note's title, body or project.", partial(noteFields), ItemRef, CHAT),
  note_search: tool(
    "Search the user's notes.",
    z.object({ query: z.string().min(1).max(500) }),
    z.object({ notes: z.array(Note) }),
    CHAT,
  ),
  timeline_add_event: tool(
    "Add an event to the user's timeline (calendar).",
    z.object({ ...eventFields, idempotency_key: idempotencyKey.optional() }),
    ItemRef,
    BOTH,
  ),
  timeline_list: tool(
    "List timeline events in a time range.",
    z.object({ from: isoDateTime.optional(), to: isoDateTime.optional() }),
    z.object({ events: z.array(TimelineEvent) }),
    CHAT,
  ),
  fs_list_dir: tool(
    "List one page of a directory's entries (the filesystem agent's scan).",
    z.object({
      path: z.string().min(1).max(4096),
      recursive: z.boolean().optional().describe("also list the entries of subdirectories"),
      cursor: z.string().max(4096).optional().describe("`next_cursor` of the previous page"),
    }),
    ListPage,
    ["agent"] as const,
  ),
  fs_read_file: tool(
    "Read a file, at most `max_bytes` of it.",
    z.object({
      path: z.string().min(1).max(4096),
      max_bytes: z.number().int().positive().optional(),
    }),
    FileContent,
    ["agent"] as const,
  ),
} as const satisfies Record<string, ToolSpec>;

export type DeviceToolContract = typeof DEVICE_TOOL_CONTRACT;
export type DeviceToolName = keyof DeviceToolContract;
export const DEVICE_TOOL_NAMES = Object.keys(DEVICE_TOOL_CONTRACT) as DeviceToolName[];

/** What the device receives in `tool_call.args`. */
export type DeviceToolArgs<N extends DeviceToolName> = z.output<DeviceToolContract[N]["args"]>;
/** What the device answers in `tool_result.result` (fields with a default may be left out). */
export type DeviceToolResult<N extends DeviceToolName> = z.input<DeviceToolContract[N]["result"]>;

/** Tools that create something take an idempotency key. */
export const takesIdempotencyKey = (name: DeviceToolName): boolean =>
  "idempotency_key" in DEVICE_TOOL_CONTRACT[name].args.shape;

export interface DeviceToolDescription {
  name: DeviceToolName;
  description: string;
  callers: DeviceToolCaller[];
  idempotency_key: boolean;
  args: Record<string, unknown>;
  result: Record<string, unknown>;
}

/** The contract as JSON Schema: arguments as the services send them, results as devices may write them. */
export function describeDeviceTools(): DeviceToolDescription[] {
  return DEVICE_TOOL_NAMES.map((name) => {
    const spec = DEVICE_TOOL_CONTRACT[name];
    return {
      name,
      description: spec.description,
      callers: [...spec.callers],
      idempotency_key: takesIdempotencyKey(name),
      args: z.toJSONSchema(spec.args, { io: "output" }) as Record<string, unknown>,
      result: z.toJSONSchema(spec.result, { io: "input" }) as Record<string, unknown>,
    };
  });
}
