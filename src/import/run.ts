import { existsSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { loadAuthSecrets } from "../auth/crypto";
import { PasswordHasher } from "../auth/passwords";
import { PgMemoryStore } from "../chat/memory/pg-store";
import { QdrantMemoryStore } from "../chat/memory/qdrant-store";
import type { MemoryStore } from "../chat/memory/store";
import { type Database, type Migration, migrate, rowsOf } from "../shared/db";
import type { Env, ServiceName } from "../shared/env";
import { createLlm } from "../shared/llm";
import type { Logger } from "../shared/logger";
import { agentConfigsStage } from "./agent-configs";
import { memoriesStage, type StoredMemories, storedInPostgres, storedInQdrant } from "./memories";
import { refreshTokensStage } from "./refresh-tokens";
import { ENTITIES, type Entity, emptyReport, type ImportReport } from "./report";
import { type AnyStage, runStage, type StageContext } from "./stage";
import { priceTiers, subscriptionsStage } from "./subscriptions";
import { type AuthHashed, usersStage } from "./users";

/** Migrations the import applies first, by schema: all four from the sources, a service's own from its executable. */
export type SchemaMigrations = Partial<Record<ServiceName, Migration[]>>;

export interface ImportOptions {
  db: Database;
  migrations: SchemaMigrations;
  dir: string;
  dryRun: boolean;
  env: Env;
  logger: Logger;
}

export const fileOf = (entity: Entity) => `${entity}.jsonl`;

/** The entities whose file is in `dir`. */
export const presentEntities = (dir: string): Entity[] =>
  ENTITIES.filter((entity) => existsSync(join(dir, fileOf(entity))));

class DryRunRollback extends Error {}

/**
 * Imports every file present in `dir`, in dependency order (users first). Each batch of lines is
 * its own transaction; a dry run does the same work inside one transaction it rolls back, and
 * embeds and stores no memory.
 */
export async function runImport(options: ImportOptions): Promise<ImportReport> {
  const report = emptyReport(options.dryRun);
  const entities = presentEntities(options.dir);
  const ready = await readySchemas(options.db, options.migrations);
  assertSchemas(entities, ready, !options.env.QDRANT_URL);
  const stages = await stagesFor(options, entities, ready);
  const work = async (scope: Database) => {
    await migrateSchemas(scope, options.migrations);
    const ctx: StageContext = { scope, dryRun: options.dryRun };
    for (const [entity, stage] of stages) {
      await runStage(stage, join(options.dir, fileOf(entity)), fileOf(entity), ctx, report);
    }
  };
  if (!options.dryRun) {
    await work(options.db);
    return report;
  }
  await options.db
    .transaction(async (tx) => {
      await work(tx);
      throw new DryRunRollback();
    })
    .catch((error) => {
      if (!(error instanceof DryRunRollback)) throw error;
    });
  return report;
}

/** The schemas as their services create them, so the import also runs before a service's first start. */
async function migrateSchemas(db: Database, migrations: SchemaMigrations): Promise<void> {
  for (const [schema, list] of Object.entries(migrations)) await migrate(db, schema, list);
}

/** The schema each file writes to (and the one it reads its users from). */
const NEEDS: Record<Entity, ServiceName[]> = {
  users: ["auth"],
  refresh_tokens: ["auth"],
  subscriptions: ["billing", "auth"],
  agent_configs: ["agent", "auth"],
  memories: ["chat", "auth"],
};

/** Schemas that exist already or that this run creates. */
async function readySchemas(db: Database, migrations: SchemaMigrations): Promise<Set<ServiceName>> {
  const ready = new Set(Object.keys(migrations) as ServiceName[]);
  const rows = rowsOf<{ schema: ServiceName }>(
    await db.execute(
      sql`select nspname as schema from pg_namespace where nspname in ('auth', 'billing', 'agent', 'chat')`,
    ),
  );
  for (const row of rows) ready.add(row.schema);
  return ready;
}

/**
 * An executable carries its own service's migrations only: a file whose schema neither exists nor
 * comes with this executable stops the run before anything is written, naming what to do.
 */
function assertSchemas(entities: Entity[], ready: Set<ServiceName>, memoriesInPostgres: boolean): void {
  const files = new Map<ServiceName, string[]>();
  for (const entity of entities) {
    for (const schema of NEEDS[entity]) {
      // Memories kept in Qdrant need no chat table.
      if (ready.has(schema) || (entity === "memories" && schema === "chat" && !memoriesInPostgres)) continue;
      files.set(schema, [...(files.get(schema) ?? []), fileOf(entity)]);
    }
  }
  if (files.size === 0) return;
  const missing = [...files].map(([schema, names]) => `${schema} (for ${names.join(", ")})`).join(", ");
  throw new Error(
    `schemas missing: ${missing}. Run the import with each one's service executable (it creates its own schema), start those services once, or use \`bun run import\` from the sources`,
  );
}

/**
 * The stages of the files present, built before anything is read: what each needs (the master
 * key, the model) is required only when its file is there, and missing is reported before any write.
 */
async function stagesFor(
  options: ImportOptions,
  entities: Entity[],
  ready: Set<ServiceName>,
): Promise<Array<[Entity, AnyStage]>> {
  const stages: Array<[Entity, AnyStage]> = [];
  for (const entity of entities) stages.push([entity, await stageFor(options, entity, ready)]);
  return stages;
}

async function stageFor(options: ImportOptions, entity: Entity, ready: Set<ServiceName>): Promise<AnyStage> {
  const { env } = options;
  switch (entity) {
    case "users":
      return usersStage({
        secrets: await loadAuthSecrets(env.MASTER_KEY_FILE),
        authHashed: authHashed(env),
        billingExists: ready.has("billing"),
      });
    case "refresh_tokens":
      return refreshTokensStage(() => new Date());
    case "subscriptions":
      return subscriptionsStage(priceTiers(env));
    case "agent_configs":
      return agentConfigsStage();
    case "memories":
      return memoriesStage({
        ...memoryStoreFor(options.db, env),
        llm: createLlm(env, options.logger),
        dryRun: options.dryRun,
      });
  }
}

/** Auth's own rule for a hash it would not replace at sign-in. */
function authHashed(env: Env): AuthHashed {
  const hasher = new PasswordHasher(env);
  return (hash) => !hasher.needsRehash(hash);
}

/** The store the chat service uses with this environment (src/chat/index.ts makes the same choice). */
function memoryStoreFor(db: Database, env: Env): { store: MemoryStore; stored: StoredMemories } {
  if (!env.QDRANT_URL) return { store: new PgMemoryStore(db), stored: storedInPostgres };
  const qdrant = { url: env.QDRANT_URL, apiKey: env.QDRANT_API_KEY, collection: env.QDRANT_COLLECTION };
  return { store: new QdrantMemoryStore(qdrant), stored: storedInQdrant(qdrant) };
}
