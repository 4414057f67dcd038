// Every service's migrations, for `bun run import` (and tests): never imported by the executables'
// entries, which carry their own service's migrations only.
import { migrations as agent } from "../agent/migrations";
import { migrations as auth } from "../auth/migrations";
import { migrations as billing } from "../billing/migrations";
import { migrations as chat } from "../chat/migrations";
import type { SchemaMigrations } from "./run";

export const ALL_MIGRATIONS: SchemaMigrations = { auth, billing, agent, chat };
