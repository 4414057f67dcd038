// The auth executable: only auth's service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.
import { createAuthService } from "../auth";
import { migrations } from "../auth/migrations";
import { runEntry } from "./entry";

await runEntry("auth", createAuthService, process.argv, process.env, migrations);
