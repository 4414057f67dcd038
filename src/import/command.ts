import { readdirSync } from "node:fs";
import { describeDatabaseFailure, openDatabase } from "../shared/db";
import { ConfigError, Env } from "../shared/env";
import { createLogger } from "../shared/logger";
import { formatCounts, type ImportReport, totalSkipped } from "./report";
import { presentEntities, runImport, type SchemaMigrations } from "./run";

export const IMPORT_USAGE = `usage: import <dir> [--dry-run]
  Loads the monolith's export from <dir>: users.jsonl, refresh_tokens.jsonl, subscriptions.jsonl,
  agent_configs.jsonl, memories.jsonl (each optional; docs/migration.md).
  --dry-run  report what would change and write nothing
Exit status: 0 the import ran (lines may have been skipped: see the report), 1 it could not run,
2 usage error.`;

type Arguments = { dir: string; dryRun: boolean } | { usage: string };

export function parseImportArguments(args: string[]): Arguments {
  const flags = args.filter((arg) => arg.startsWith("-"));
  const positional = args.filter((arg) => !arg.startsWith("-"));
  const unknown = flags.filter((flag) => flag !== "--dry-run");
  if (flags.includes("--help") || flags.includes("-h")) return { usage: "" };
  if (unknown.length > 0) return { usage: `unknown option ${unknown[0]}` };
  if (positional.length !== 1) return { usage: positional.length === 0 ? "no directory given" : "one directory only" };
  return { dir: positional[0] as string, dryRun: flags.includes("--dry-run") };
}

/**
 * `adiuva import <dir> [--dry-run]`: every executable's `import` subcommand and `bun run import`.
 * Reads the services' own variables (DATABASE_URL, MASTER_KEY_FILE, LLM_*, QDRANT_*, STRIPE_PRICE_*).
 */
export async function importCommand(
  args: string[],
  source: NodeJS.ProcessEnv,
  migrations: SchemaMigrations,
): Promise<number> {
  const parsed = parseImportArguments(args);
  if ("usage" in parsed) {
    if (parsed.usage) console.error(parsed.usage);
    console.error(IMPORT_USAGE);
    return parsed.usage ? 2 : 0;
  }
  const unreadable = directoryProblem(parsed.dir);
  if (unreadable) {
    console.error(unreadable);
    return 1;
  }
  try {
    return await importFrom(parsed.dir, parsed.dryRun, source, migrations);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : `import failed: ${(error as Error).message}`);
    return 1;
  }
}

function directoryProblem(dir: string): string | undefined {
  try {
    readdirSync(dir);
  } catch (error) {
    return `cannot read directory ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  if (presentEntities(dir).length === 0) return `no import file in ${dir} (users.jsonl, refresh_tokens.jsonl, ...)`;
  return undefined;
}

async function importFrom(
  dir: string,
  dryRun: boolean,
  source: NodeJS.ProcessEnv,
  migrations: SchemaMigrations,
): Promise<number> {
  const env = importEnv(source);
  // The embedded database is one process's (the dev server's), and a batch's transaction would
  // hold its only connection while the memory store writes beside it.
  if (!env.DATABASE_URL) throw new ConfigError("invalid configuration: DATABASE_URL must be set for the import");
  const logger = createLogger({ service: "import", level: env.LOG_LEVEL });
  const database = openDatabase({
    url: env.DATABASE_URL,
    passwordFile: env.DATABASE_PASSWORD_FILE,
    // A batch's transaction and the memory store's writes beside it.
    maxConnections: 4,
    applicationName: "adiuva-import",
    connectionWaitMs: env.DATABASE_WAIT_MS,
    statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
  });
  try {
    try {
      await database.ping(env.DATABASE_WAIT_MS);
    } catch (error) {
      console.error(describeDatabaseFailure(database, error).message);
      return 1;
    }
    const report = await runImport({ db: database.db, dir, dryRun, env, logger, migrations });
    printReport(report);
    return 0;
  } finally {
    await database.close();
  }
}

/**
 * The services' variables, validated by the same schema. SERVICE_NAME does not matter here (any
 * executable runs the import); which variables are needed depends on the files (MASTER_KEY_FILE
 * for users, LLM_BASE_URL in production for memories) and is checked when they are used.
 */
function importEnv(source: NodeJS.ProcessEnv): Env {
  const parsed = Env.safeParse({ ...source, SERVICE_NAME: source.SERVICE_NAME || "all" });
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join(".") || "environment"}: ${issue.message}`);
  throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
}

function printReport(report: ImportReport): void {
  for (const problem of report.problems) console.error(`${problem.file}:${problem.line}: ${problem.reason}`);
  if (report.dryRun) console.log("dry run: nothing was written; the counts say what a run would do");
  console.log(formatCounts(report));
  const skipped = totalSkipped(report);
  if (skipped > 0) console.log(`${skipped} line(s) skipped, each listed above with its file:line and reason`);
}
