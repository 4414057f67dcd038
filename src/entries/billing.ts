// The billing executable: only billing's service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.
import { createBillingService } from "../billing";
import { migrations } from "../billing/migrations";
import { runEntry } from "./entry";

await runEntry("billing", createBillingService, process.argv, process.env, migrations);
