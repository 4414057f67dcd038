import type { z } from "zod";
import type { Database } from "../shared/db";
import { batches, type Numbered, readJsonl } from "./jsonl";
import { type Entity, type ImportReport, type Outcome, record } from "./report";

export interface StageContext {
  /**
   * Where batches run: the database itself, each batch committing on its own, or in a dry run the
   * one transaction rolled back at the end (each batch a savepoint in it), so later files see what
   * earlier ones would have written and nothing stays.
   */
  scope: Database;
  dryRun: boolean;
}

/** One file of the import. */
export interface Stage<S extends z.ZodType> {
  entity: Entity;
  schema: S;
  batchSize: number;
  /** Checks across the whole file that need no database (a legacy id twice); a reason skips the line. */
  admit?(value: z.output<S>, line: number): string | undefined;
  /**
   * Applies a batch inside `tx` and says what became of each line, in order. Throwing rolls the
   * batch back; its lines are then applied one at a time, so one line the database refuses costs
   * only itself and no line is ever half applied.
   */
  apply(tx: Database, lines: Array<Numbered<z.output<S>>>): Promise<Outcome[]>;
}

/** A stage of any file, as the runner holds them. */
export type AnyStage = Stage<z.ZodType>;

/** Admits each key once per file; the second line with a key is skipped naming the first. */
export function firstSeen(label: string) {
  const seen = new Map<string, number>();
  return (key: string, line: number): string | undefined => {
    const first = seen.get(key);
    if (first !== undefined) return `${label} already on line ${first}`;
    seen.set(key, line);
    return undefined;
  };
}

export async function runStage<S extends z.ZodType>(
  stage: Stage<S>,
  path: string,
  file: string,
  ctx: StageContext,
  report: ImportReport,
): Promise<void> {
  const started = performance.now();
  report.counts[stage.entity].present = true;
  for await (const batch of batches(readJsonl(path, stage.schema), stage.batchSize)) {
    const admitted: Array<Numbered<z.output<S>>> = [];
    for (const parsed of batch) {
      const reason = "problem" in parsed ? parsed.problem : stage.admit?.(parsed.value, parsed.line);
      if (reason !== undefined) record(report, stage.entity, file, parsed.line, { skipped: reason });
      else admitted.push(parsed as Numbered<z.output<S>>);
    }
    if (admitted.length === 0) continue;
    const outcomes = await applyBatch(stage, ctx, admitted);
    for (const [index, outcome] of outcomes.entries()) {
      record(report, stage.entity, file, (admitted[index] as Numbered<unknown>).line, outcome);
    }
  }
  report.counts[stage.entity].seconds = (performance.now() - started) / 1000;
}

async function applyBatch<S extends z.ZodType>(
  stage: Stage<S>,
  ctx: StageContext,
  lines: Array<Numbered<z.output<S>>>,
): Promise<Outcome[]> {
  try {
    return await ctx.scope.transaction((tx) => stage.apply(tx, lines));
  } catch (error) {
    if (!refusesLine(error)) throw error;
    if (lines.length === 1) return [refused(error)];
    const outcomes: Outcome[] = [];
    for (const line of lines) outcomes.push(...(await applyBatch(stage, ctx, [line])));
    return outcomes;
  }
}

/** A line's data the database (or a stage) refuses, as opposed to a database that is not there. */
export class LineRefused extends Error {
  override name = "LineRefused";
}

/**
 * Data exceptions (SQLSTATE class 22) and integrity violations (class 23) belong to a line; any
 * other failure (connection lost, timeout, a missing schema) would refuse every line alike, so it
 * ends the run instead of skipping the whole file.
 */
function refusesLine(error: unknown): boolean {
  if (error instanceof LineRefused) return true;
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = (cause as { code?: unknown }).code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}

/** The driver's own message: drizzle's wrapper quotes the statement and its values, password hashes included. */
function refused(error: unknown): Outcome {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return { skipped: `refused by the database: ${cause instanceof Error ? cause.message : String(cause)}` };
}

/** Outcomes of an upsert: whether the row is new, differs in any compared field, or is as stored. */
export function outcomeOf<T>(existing: T | undefined, differs: (row: T) => boolean): Outcome {
  if (existing === undefined) return "created";
  return differs(existing) ? "updated" : "unchanged";
}
