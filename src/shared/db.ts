import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { withConnectionDeadline } from "./db-deadline";
import { ConfigError } from "./env";
import { withTimeout } from "./timeout";

/** The drizzle handle every service uses; the same API on postgres.js and on embedded PGlite. */
export type Database = PgDatabase<PgQueryResultHKT>;

export interface DatabaseHandle {
  db: Database;
  kind: "postgres" | "pglite";
  /** Resolves when the database answers a trivial query within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  /** Where embedded PGlite keeps its files when no url is given. */
  dataDir?: string;
  maxConnections?: number;
  applicationName?: string;
  /** Longest a query waits for a connection before it fails as `database_unavailable`. */
  connectionWaitMs?: number;
  /** Server-side limit of one statement (PostgreSQL's `statement_timeout`); 0 is none. */
  statementTimeoutMs?: number;
}

/** Opens PostgreSQL when a URL is given, otherwise embedded PGlite on disk (development only). */
export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  if (options.url) {
    const waitMs = options.connectionWaitMs ?? 3000;
    const client = postgres(options.url, {
      max: options.maxConnections ?? 10,
      idle_timeout: 30,
      connect_timeout: Math.max(1, Math.ceil(waitMs / 1000)),
      onnotice: () => {},
      connection: {
        application_name: options.applicationName ?? "adiuva",
        statement_timeout: options.statementTimeoutMs ?? 0,
      },
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
    close: () => client.close(),
  };
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
