// The metric names a PromQL expression reads, for checking alerts and dashboards against the code.

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * Identifiers that are neither functions, keywords, labels nor Grafana variables: label matchers,
 * strings, ranges and grouping lists are taken out first.
 */
export function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\w+|\$\{[^}]*\}/g, " ");
  const names = [...bare.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)].map((match) => match[1] as string);
  return [...new Set(names.filter((name) => !KEYWORDS.has(name.toLowerCase())))];
}

/** A histogram's series (`_bucket`, `_sum`, `_count`) come from the histogram's own name. */
export const histogramBase = (name: string) => name.replace(/_(?:bucket|sum|count)$/, "");
