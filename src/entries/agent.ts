// The agent executable: only agent's service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.
import { createAgentService } from "../agent";
import { migrations } from "../agent/migrations";
import { runEntry } from "./entry";

await runEntry("agent", createAgentService, process.argv, process.env, migrations);
