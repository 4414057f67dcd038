import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { z } from "zod";

/** A line that passed its schema, with its 1-based number in the file. */
export interface Numbered<T> {
  line: number;
  value: T;
}

export type ParsedLine<T> = Numbered<T> | { line: number; problem: string };

/**
 * Reads a JSON Lines file as it streams, so a large export never sits in memory whole; yields each
 * non-blank line parsed against `schema`, or the reason it could not be.
 */
export async function* readJsonl<S extends z.ZodType>(
  path: string,
  schema: S,
): AsyncGenerator<ParsedLine<z.output<S>>> {
  const lines = createInterface({
    input: createReadStream(path, { encoding: "utf8" }),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let number = 0;
  for await (const text of lines) {
    number += 1;
    // Some exporters start a UTF-8 file with a byte order mark; it is not part of the first line.
    const line = number === 1 ? text.replace(/^\uFEFF/, "") : text;
    if (line.trim() === "") continue;
    yield parseLine(number, line, schema);
  }
}

function parseLine<S extends z.ZodType>(line: number, text: string, schema: S): ParsedLine<z.output<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { line, problem: `malformed JSON (${(error as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { line, value: parsed.data };
  return { line, problem: describeIssues(parsed.error.issues) };
}

/** The first few issues, each as `path: message`; values never appear (they may be password hashes). */
function describeIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  const shown = issues.slice(0, 3).map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return issues.length > 3 ? `${shown.join("; ")}; and ${issues.length - 3} more` : shown.join("; ");
}

/** Groups a stream of parsed lines into batches of at most `size` lines. */
export async function* batches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
