// The storage executable: only storage's service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.

import { createStorageService } from "../storage";
import { migrations } from "../storage/migrations";
import { runEntry } from "./entry";

await runEntry("storage", createStorageService, process.argv, process.env, migrations);
