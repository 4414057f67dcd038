// A device's side of the agent tools, in memory: a small filesystem to scan and the user's
// tasks/projects/notes/events, deduplicated by idempotency_key as the real app does.
export interface Entity {
  id: string;
  idempotency_key?: string;
  [field: string]: unknown;
}

export interface DeviceStore {
  files: Map<string, string>;
  tasks: Entity[];
  projects: Entity[];
  notes: Entity[];
  events: Entity[];
  /** Every tool call received, by name. */
  calls: Map<string, number>;
}

export class ToolFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function createStore(files: Record<string, string> = {}): DeviceStore {
  return { files: new Map(Object.entries(files)), tasks: [], projects: [], notes: [], events: [], calls: new Map() };
}

const PAGE = 50;

/** Answers one tool call against the store; throws ToolFailure for a tool-level error. */
export function answerTool(store: DeviceStore, name: string, args: Record<string, unknown>): unknown {
  store.calls.set(name, (store.calls.get(name) ?? 0) + 1);
  const create = (list: Entity[], prefix: string) => {
    const key = args.idempotency_key as string | undefined;
    const existing = key ? list.find((each) => each.idempotency_key === key) : undefined;
    if (existing) return existing;
    const entity: Entity = { ...args, id: `${prefix}-${list.length + 1}` };
    list.push(entity);
    return entity;
  };
  switch (name) {
    case "fs_list_dir": {
      const root = String(args.path).replace(/\/$/, "");
      const paths = [...store.files.keys()].filter((path) => path.startsWith(`${root}/`)).sort();
      const offset = Number(args.cursor ?? 0);
      const page = paths.slice(offset, offset + PAGE);
      return {
        entries: page.map((path) => ({ path, type: "file", size: store.files.get(path)?.length ?? 0, mtime: 0 })),
        next_cursor: offset + PAGE < paths.length ? String(offset + PAGE) : undefined,
      };
    }
    case "fs_read_file": {
      const content = store.files.get(String(args.path));
      if (content === undefined) throw new ToolFailure("not_found", `no such file ${String(args.path)}`);
      if (content.startsWith("BINARY")) return { content: btoa(content), encoding: "base64", truncated: false };
      if (content.startsWith("UNREADABLE")) throw new ToolFailure("permission_denied", "cannot read this file");
      const max = Number(args.max_bytes ?? content.length);
      return { content: content.slice(0, max), encoding: "utf8", truncated: content.length > max };
    }
    case "task_create":
      return create(store.tasks, "task");
    case "project_create":
      return create(store.projects, "project");
    case "note_create":
      return create(store.notes, "note");
    case "timeline_add_event":
      return create(store.events, "event");
    default:
      throw new ToolFailure("unknown_tool", `no tool ${name}`);
  }
}

export const AGENT_TOOLS = [
  "fs_list_dir",
  "fs_read_file",
  "task_create",
  "project_create",
  "note_create",
  "timeline_add_event",
];

/**
 * Builds `count` files under `dir`; every third holds a task, every fifth a project with a task,
 * every seventh a note, every eleventh an event, the rest nothing. Returns the expected entities.
 */
export function sampleFiles(dir: string, count: number) {
  const files: Record<string, string> = {};
  const expected = { tasks: 0, projects: 0, notes: 0, events: 0 };
  for (let n = 0; n < count; n++) {
    const lines: string[] = [`# file ${n}`];
    if (n % 3 === 0) {
      lines.push(`TASK: call supplier ${n}`);
      expected.tasks++;
    }
    if (n % 5 === 0) {
      lines.push(`PROJECT: launch ${n}`, `TASK: plan launch ${n} | launch ${n}`);
      expected.projects++;
      expected.tasks++;
    }
    if (n % 7 === 0) {
      lines.push(`NOTE: idea ${n} | remember the idea number ${n}`);
      expected.notes++;
    }
    if (n % 11 === 0) {
      lines.push(`EVENT: review ${n} @ 2030-01-${String((n % 28) + 1).padStart(2, "0")}T10:00:00Z`);
      expected.events++;
    }
    if (lines.length === 1) lines.push("just some prose with nothing to extract");
    files[`${dir}/f${String(n).padStart(4, "0")}.md`] = lines.join("\n");
  }
  return { files, expected };
}
