import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { withConnectionDeadline } from "./db-deadline";
import { ConfigError, readConfigFile, StartupError } from "./env";
import { networkProblem } from "./errors";
import { withTimeout } from "./timeout";

/** The drizzle handle every service uses; the same API on postgres.js and on embedded PGlite. */
export type Database = PgDatabase<PgQueryResultHKT>;

export interface DatabaseHandle {
  db: Database;
  kind: "postgres" | "pglite";
  /** Resolves when the database answers a trivial query within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  /** Where it is, for messages: `host:port` of PostgreSQL, or PGlite's directory. */
  target: string;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  /** A file holding the password; replaces any password in `url` (read once, here). */
  passwordFile?: string;
  /** Where embedded PGlite keeps its files when no url is given. */
  dataDir?: string;
  maxConnections?: number;
  applicationName?: string;
  /** Longest a query waits for a connection before it fails as `database_unavailable`. */
  connectionWaitMs?: number;
  /** Server-side limit of one statement (PostgreSQL's `statement_timeout`); 0 is none. */
  statementTimeoutMs?: number;
  /**
   * `transaction`: the URL is a pooler in transaction mode, where consecutive statements of a
   * session may run on different server connections: no named prepared statements, no session
   * parameters (statement_timeout is then set on the role).
   */
  poolMode?: "session" | "transaction";
}

/** Opens PostgreSQL when a URL is given, otherwise embedded PGlite on disk (development only). */
export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  if (options.url) {
    const waitMs = options.connectionWaitMs ?? 3000;
    // Trailing newlines are how editors and `echo` end a file, never part of a password.
    const password = options.passwordFile
      ? readConfigFile("DATABASE_PASSWORD_FILE", options.passwordFile).replace(/\r?\n$/, "")
      : undefined;
    const client = postgres(options.url, {
      ...(password !== undefined && { password }),
      max: options.maxConnections ?? 10,
      idle_timeout: 30,
      connect_timeout: Math.max(1, Math.ceil(waitMs / 1000)),
      onnotice: () => {},
      ...(options.poolMode === "transaction"
        ? { prepare: false, connection: { application_name: options.applicationName ?? "adiuva" } }
        : {
            connection: {
              application_name: options.applicationName ?? "adiuva",
              statement_timeout: options.statementTimeoutMs ?? 0,
            },
          }),
    });
    const db = drizzlePostgres(withConnectionDeadline(client, waitMs)) as unknown as Database;
    return {
      db,
      kind: "postgres",
      ping: (timeoutMs = 2000) =>
        withTimeout(
          client`select 1`.then(() => undefined),
          timeoutMs,
          "postgres",
        ),
      target: postgresTarget(options.url),
      close: () => client.end({ timeout: 5 }),
    };
  }
  if (isCompiledBinary()) {
    // PGlite's WebAssembly files are not embedded in the service executables, which are for
    // deployments with a real PostgreSQL anyway.
    throw new ConfigError("invalid configuration: DATABASE_URL is required by the compiled service executables");
  }
  const dir = `${options.dataDir ?? ".data"}/pglite`;
  mkdirSync(dir, { recursive: true });
  const unlock = lockDataDir(dir);
  const client = new PGlite(dir);
  const db = drizzlePglite(client) as unknown as Database;
  return {
    db,
    kind: "pglite",
    ping: (timeoutMs = 2000) =>
      withTimeout(
        client.query("select 1").then(() => undefined),
        timeoutMs,
        "pglite",
      ),
    target: dir,
    close: () => client.close().finally(unlock),
  };
}

/** `host:port` of a PostgreSQL URL, for messages (never the credentials). */
function postgresTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || 5432}`;
}

/**
 * PGlite is one process's database: a second process opening the same files corrupts them. A lock
 * file beside them holds the owner's pid; a lock whose process is gone is taken over. Released on
 * close and at exit.
 */
function lockDataDir(dir: string): () => void {
  const lockFile = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockFile, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
      const holder = Number.parseInt(readFileSync(lockFile, "utf8"), 10);
      if (holder !== process.pid && isAlive(holder)) {
        throw new StartupError(`data directory ${dir} is in use by process ${holder}`);
      }
      unlinkSync(lockFile);
    }
  }
  let held = true;
  const unlock = () => {
    if (!held) return;
    held = false;
    process.off("exit", unlock);
    try {
      unlinkSync(lockFile);
    } catch {
      // Already gone: nothing to release.
    }
  };
  process.on("exit", unlock);
  return unlock;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, owned by another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Why the database did not answer, in one line naming it: a StartupError when waiting cannot fix it
 * (credentials, no such database, embedded files), a plain Error when it may answer later.
 */
export function describeDatabaseFailure(database: DatabaseHandle, error: unknown): Error {
  if (database.kind === "pglite") {
    return new StartupError(`embedded database at ${database.target}: ${(error as Error).message}`);
  }
  const problem = postgresProblem(error);
  const message = `PostgreSQL at ${database.target} ${problem}`;
  return FATAL_PROBLEMS.has(problem) ? new StartupError(message) : new Error(message);
}

const FATAL_PROBLEMS = new Set(["refused the credentials", "has no such database"]);

function postgresProblem(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const network = networkProblem(code);
  if (network) return network;
  switch (code) {
    case "CONNECT_TIMEOUT":
      return "did not answer in time";
    case "28P01":
    case "28000":
      return "refused the credentials";
    case "3D000":
      return "has no such database";
    case undefined:
      return /did not answer/.test(message ?? "") ? "did not answer in time" : "is unreachable";
    default:
      return `is unreachable (${code})`;
  }
}

/** True inside a `bun build --compile` executable, whose own files live under /$bunfs/. */
export const isCompiledBinary = (): boolean => import.meta.path.startsWith("/$bunfs/");

export interface Migration {
  tag: string;
  sql: string;
}

/** Any lock id works as long as every service uses the same one: it serialises all schema changes. */
const MIGRATION_LOCK_ID = 0x6164_6975; // "adiu"

/**
 * Applies a service's committed migrations inside one transaction holding a cluster-wide advisory
 * lock, so replicas starting together apply each migration exactly once. Bookkeeping lives in the
 * service's own schema (`<schema>.__migrations`).
 */
export async function migrate(db: Database, schema: string, migrations: Migration[]): Promise<string[]> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  const applied: string[] = [];
  await db.transaction(async (tx) => {
    // A migration may rewrite a large table: the request-sized statement limit is not for it.
    await tx.execute(sql`set local statement_timeout = 0`);
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
    await tx.execute(sql.raw(`create schema if not exists "${schema}"`));
    await tx.execute(
      sql.raw(
        `create table if not exists "${schema}".__migrations (tag text primary key, applied_at timestamptz not null default now())`,
      ),
    );
    const rows = await tx.execute<{ tag: string }>(sql.raw(`select tag from "${schema}".__migrations`));
    const done = new Set(rowsOf<{ tag: string }>(rows).map((row) => row.tag));
    for (const migration of migrations) {
      if (done.has(migration.tag)) continue;
      for (const statement of splitStatements(migration.sql)) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into ${sql.raw(`"${schema}".__migrations`)} (tag) values (${migration.tag})`);
      applied.push(migration.tag);
    }
  });
  return applied;
}

/** drizzle-kit separates statements with a marker; the schema itself already exists by then. */
function splitStatements(text: string): string[] {
  return text
    .split("--> statement-breakpoint")
    .map((statement) => statement.trim().replace(/^CREATE SCHEMA "(\w+)";?$/i, 'CREATE SCHEMA IF NOT EXISTS "$1"'))
    .filter((statement) => statement.length > 0);
}

/** postgres.js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
