import { type Migration, migrate, openDatabase } from "./db";
import type { Platform } from "./platform";

/**
 * Applies a service's migrations at start: on MIGRATION_DATABASE_URL when set (a direct connection,
 * opened for them and closed after: behind a transaction pooler the migration's transaction and its
 * advisory lock belong on PostgreSQL itself), else on the service's own database.
 */
export async function migrateService(platform: Platform, schema: string, migrations: Migration[]): Promise<string[]> {
  const { env } = platform;
  if (!env.MIGRATION_DATABASE_URL) return migrate(platform.db, schema, migrations);
  const direct = openDatabase({
    url: env.MIGRATION_DATABASE_URL,
    passwordFile: env.DATABASE_PASSWORD_FILE,
    maxConnections: 1,
    applicationName: `adiuva-${env.SERVICE_NAME}-migrations`,
    connectionWaitMs: env.DATABASE_WAIT_MS,
  });
  try {
    return await migrate(direct.db, schema, migrations);
  } finally {
    await direct.close();
  }
}
