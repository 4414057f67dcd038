/** The files the import reads, in the order it reads them: later ones refer to users. */
export const ENTITIES = ["users", "refresh_tokens", "subscriptions", "agent_configs", "memories"] as const;
export type Entity = (typeof ENTITIES)[number];

/** What became of one line. */
export type Outcome = "created" | "updated" | "unchanged" | { skipped: string };

export interface EntityCounts {
  created: number;
  updated: number;
  unchanged: number;
  skipped: number;
  /** False when the directory has no file for the entity. */
  present: boolean;
  seconds: number;
}

/** A line that was not applied, and why (`file:line: reason`). */
export interface Problem {
  file: string;
  line: number;
  reason: string;
}

export interface ImportReport {
  dryRun: boolean;
  counts: Record<Entity, EntityCounts>;
  problems: Problem[];
}

export function emptyReport(dryRun: boolean): ImportReport {
  const counts = Object.fromEntries(
    ENTITIES.map((entity) => [
      entity,
      { created: 0, updated: 0, unchanged: 0, skipped: 0, present: false, seconds: 0 },
    ]),
  ) as Record<Entity, EntityCounts>;
  return { dryRun, counts, problems: [] };
}

export function record(report: ImportReport, entity: Entity, file: string, line: number, outcome: Outcome): void {
  const counts = report.counts[entity];
  if (typeof outcome === "string") counts[outcome] += 1;
  else {
    counts.skipped += 1;
    report.problems.push({ file, line, reason: outcome.skipped });
  }
}

/** The table printed at the end of a run. */
export function formatCounts(report: ImportReport): string {
  const header = ["entity", "created", "updated", "unchanged", "skipped", "lines/s"];
  const rows = ENTITIES.map((entity) => {
    const counts = report.counts[entity];
    if (!counts.present) return [entity, "-", "-", "-", "-", "no file"];
    const lines = counts.created + counts.updated + counts.unchanged + counts.skipped;
    const rate = counts.seconds > 0 ? Math.round(lines / counts.seconds) : lines;
    return [entity, counts.created, counts.updated, counts.unchanged, counts.skipped, rate].map(String);
  });
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => (row[column] ?? "").length)));
  const format = (row: string[]) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join("  ");
  return [format(header), ...rows.map(format)].join("\n");
}

export const totalSkipped = (report: ImportReport): number =>
  ENTITIES.reduce((sum, entity) => sum + report.counts[entity].skipped, 0);

export const totalWritten = (report: ImportReport): number =>
  ENTITIES.reduce((sum, entity) => sum + report.counts[entity].created + report.counts[entity].updated, 0);
