// The plugins executable: only plugins' service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.

import { createPluginsService } from "../plugins";
import { migrations } from "../plugins/migrations";
import { runEntry } from "./entry";

await runEntry("plugins", createPluginsService, process.argv, process.env, migrations);
