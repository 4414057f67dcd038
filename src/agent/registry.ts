import { z } from "zod";
import type { Tier } from "../shared/tiers";

/** What a run writes to the device, one device tool family each. */
export const ENTITY_KINDS = ["tasks", "projects", "notes", "events"] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

const Extract = z
  .object({
    tasks: z.boolean().default(true).describe("Create tasks found in files"),
    projects: z.boolean().default(true).describe("Create projects found in files"),
    notes: z.boolean().default(true).describe("Create notes summarising files"),
    events: z.boolean().default(true).describe("Add dated events to the timeline"),
  })
  .strict();

const Extension = z
  .string()
  .regex(/^\.[a-z0-9]{1,10}$/i, "an extension such as .md")
  .transform((value) => value.toLowerCase());

export const FilesystemConfig = z
  .object({
    path: z.string().trim().min(1).max(1024).describe("Directory on the device to scan"),
    recursive: z.boolean().default(true).describe("Include subdirectories"),
    extensions: z
      .array(Extension)
      .max(50)
      .default([".md", ".txt", ".org", ".csv", ".json", ".ics", ".eml"])
      .describe("Only files with these extensions; empty means every file"),
    max_files: z.number().int().min(1).max(5000).default(500).describe("Stop listing after this many files"),
    max_file_bytes: z
      .number()
      .int()
      .min(256)
      .max(1_000_000)
      .default(65_536)
      .describe("Read at most this many bytes of each file"),
    extract: Extract.default({ tasks: true, projects: true, notes: true, events: true }),
  })
  .strict();
export type FilesystemConfig = z.infer<typeof FilesystemConfig>;

export const Document = z
  .object({
    title: z.string().trim().min(1).max(200),
    text: z.string().min(1).max(50_000),
  })
  .strict();

/** Cloud batch agents read documents held in their configuration instead of device files. */
export const DocumentsConfig = z
  .object({
    documents: z.array(Document).min(1).max(50).describe("Texts to process in one run"),
  })
  .strict();
export type DocumentsConfig = z.infer<typeof DocumentsConfig>;

export type AgentKind = "local" | "cloud";

export interface AgentType {
  type: string;
  name: string;
  description: string;
  kind: AgentKind;
  minTier: Tier;
  schema: z.ZodType<Record<string, unknown>>;
  /** The entity kinds a run of this type may write, given its configuration. */
  entityKinds(config: Record<string, unknown>): EntityKind[];
}

const only = (kind: EntityKind) => () => [kind];

const batch = (type: string, kind: EntityKind, name: string, minTier: Tier, description: string): AgentType => ({
  type,
  name,
  description,
  kind: "cloud",
  minTier,
  schema: DocumentsConfig,
  entityKinds: only(kind),
});

/** Every agent type the service can configure and run. */
export const AGENT_TYPES: readonly AgentType[] = [
  {
    type: "filesystem",
    name: "Filesystem agent",
    description:
      "Scans a directory on your device, classifies each file and turns what it finds into tasks, projects, notes and timeline events.",
    kind: "local",
    minTier: "free",
    schema: FilesystemConfig,
    entityKinds: (config) => {
      const extract = (config as FilesystemConfig).extract;
      return ENTITY_KINDS.filter((kind) => extract[kind]);
    },
  },
  batch("task_batch", "tasks", "Task agent (batch)", "free", "Extracts tasks from a batch of documents."),
  batch("note_batch", "notes", "Note agent (batch)", "pro", "Writes a note for each document of a batch."),
  batch(
    "project_batch",
    "projects",
    "Project agent (batch)",
    "pro",
    "Finds the projects a batch of documents talks about.",
  ),
  batch(
    "timeline_batch",
    "events",
    "Timeline agent (batch)",
    "power",
    "Adds the dated events of a batch of documents to the timeline.",
  ),
];

const byType = new Map(AGENT_TYPES.map((each) => [each.type, each]));

export const agentType = (type: string): AgentType | undefined => byType.get(type);
