import pino from "pino";
import type { Logger } from "../logger";

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A real pino logger whose JSON lines land in memory, for tests that assert on what is logged. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}
