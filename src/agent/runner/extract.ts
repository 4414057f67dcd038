import { generateText, type LanguageModel, Output } from "ai";
import { z } from "zod";
import type { EntityKind } from "../registry";

/** OpenAI's strict structured outputs need every field present: optional ones are nullable. */
export const Classification = z.object({
  category: z
    .enum(["tasks", "project", "notes", "meeting", "calendar", "reference", "other"])
    .describe("What the file mostly is"),
  relevant: z.boolean().describe("Whether the file holds tasks, projects, notes or dated events worth keeping"),
});
export type Classification = z.infer<typeof Classification>;

const Text = (max: number) => z.string().trim().min(1).max(max);
const MAX_PER_KIND = 50;

export const Extraction = z.object({
  projects: z.array(z.object({ name: Text(200), description: z.string().max(2000).nullable() })),
  tasks: z.array(
    z.object({
      title: Text(300),
      due: z.string().max(40).nullable().describe("ISO 8601 date or date-time"),
      notes: z.string().max(2000).nullable(),
      project: z.string().max(200).nullable().describe("Name of one of the projects above"),
    }),
  ),
  notes: z.array(z.object({ title: Text(300), body: Text(20_000), project: z.string().max(200).nullable() })),
  events: z.array(
    z.object({
      title: Text(300),
      at: z.string().max(40).describe("ISO 8601 date-time"),
      end: z.string().max(40).nullable(),
      project: z.string().max(200).nullable(),
    }),
  ),
});
export type Extraction = z.infer<typeof Extraction>;

export interface ItemText {
  /** The path or document title, shown to the model. */
  name: string;
  content: string;
  truncated: boolean;
}

const CLASSIFY_SYSTEM =
  "You sort a user's files for a personal assistant. Decide what the file is and whether it contains " +
  "tasks, projects, notes or dated events worth adding to the user's planner. Answer only with the JSON object.";

const EXTRACT_SYSTEM =
  "You extract structured items from one of a user's files for their personal planner: projects, tasks " +
  "(with due dates when stated), notes (a concise title and a faithful body) and dated timeline events. " +
  "Only include what the file actually says; leave a list empty when there is nothing. Dates are ISO 8601. " +
  "Answer only with the JSON object.";

const describe = (item: ItemText) =>
  `File: ${item.name}${item.truncated ? " (truncated)" : ""}\n-----\n${item.content}\n-----`;

export async function classifyItem(model: LanguageModel, item: ItemText, signal: AbortSignal): Promise<Classification> {
  const { output } = await generateText({
    model,
    system: CLASSIFY_SYSTEM,
    prompt: describe(item),
    output: Output.object({ schema: Classification, name: "classification" }),
    abortSignal: signal,
    temperature: 0,
  });
  return output;
}

export async function extractItem(
  model: LanguageModel,
  item: ItemText,
  kinds: EntityKind[],
  category: string,
  signal: AbortSignal,
): Promise<Extraction> {
  const { output } = await generateText({
    model,
    system: EXTRACT_SYSTEM,
    prompt: `Wanted: ${kinds.join(", ")}. The file was classified as "${category}".\n${describe(item)}`,
    output: Output.object({ schema: Extraction, name: "extraction" }),
    abortSignal: signal,
    temperature: 0,
  });
  // Kinds the configuration did not ask for are dropped, whatever the model returned.
  return {
    projects: kinds.includes("projects") ? output.projects.slice(0, MAX_PER_KIND) : [],
    tasks: kinds.includes("tasks") ? output.tasks.slice(0, MAX_PER_KIND) : [],
    notes: kinds.includes("notes") ? output.notes.slice(0, MAX_PER_KIND) : [],
    events: kinds.includes("events") ? output.events.slice(0, MAX_PER_KIND) : [],
  };
}
