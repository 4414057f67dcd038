import { createHash } from "node:crypto";
import type { DeviceRpc } from "../../shared/device-rpc";
import { ItemRef } from "../../shared/device-tools";
import type { EntityKind } from "../registry";
import type { Extraction } from "./extract";

export type Created = Record<EntityKind, number>;

export interface WriteTarget {
  rpc: DeviceRpc;
  userId: string;
  /** What the idempotency keys are scoped to: the scanned directory, or the configuration. */
  scope: string;
  item: string;
  origin: string;
  deadlineMs: number;
  signal: AbortSignal;
}

const normalise = (text: string) => text.trim().toLowerCase().replace(/\s+/g, " ");

/**
 * The key the device deduplicates on: the same entity found again in the same file (a re-run, a
 * retried job, another replica finishing a crashed one's work) maps to the same key.
 */
export function idempotencyKey(scope: string, item: string, kind: EntityKind, identity: string): string {
  const digest = createHash("sha256")
    .update(`${scope}\n${item}\n${kind}\n${normalise(identity)}`)
    .digest("hex");
  return `agent:${digest.slice(0, 40)}`;
}

/** The id a create tool answered with (the contract's `ItemRef`); without one, entities just go unlinked. */
const idOf = (result: unknown): string | undefined => ItemRef.safeParse(result).data?.id;

const orNothing = <T>(value: T | null) => value ?? undefined;

/** Writes one item's entities through the device tools: projects first, so the rest can point at them. */
export async function writeEntities(target: WriteTarget, found: Extraction): Promise<Created> {
  const created: Created = { tasks: 0, projects: 0, notes: 0, events: 0 };
  const call = (name: string, args: Record<string, unknown>) =>
    target.rpc.call({
      userId: target.userId,
      name,
      args,
      deadlineMs: target.deadlineMs,
      signal: target.signal,
      origin: target.origin,
    });
  const key = (kind: EntityKind, identity: string) => idempotencyKey(target.scope, target.item, kind, identity);

  const projectIds = new Map<string, string>();
  for (const project of found.projects) {
    const result = await call("project_create", {
      name: project.name,
      description: orNothing(project.description),
      idempotency_key: key("projects", project.name),
    });
    const id = idOf(result);
    if (id) projectIds.set(normalise(project.name), id);
    created.projects++;
  }
  const projectId = (name: string | null) => (name ? projectIds.get(normalise(name)) : undefined);

  for (const task of found.tasks) {
    await call("task_create", {
      title: task.title,
      due: orNothing(task.due),
      notes: orNothing(task.notes),
      project_id: projectId(task.project),
      idempotency_key: key("tasks", task.title),
    });
    created.tasks++;
  }
  for (const note of found.notes) {
    await call("note_create", {
      title: note.title,
      body: note.body,
      project_id: projectId(note.project),
      idempotency_key: key("notes", note.title),
    });
    created.notes++;
  }
  for (const event of found.events) {
    await call("timeline_add_event", {
      title: event.title,
      at: event.at,
      end: orNothing(event.end),
      project_id: projectId(event.project),
      idempotency_key: key("events", `${event.title}@${event.at}`),
    });
    created.events++;
  }
  return created;
}
