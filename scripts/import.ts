// `bun run import <dir> [--dry-run]`: the monolith's JSON Lines export into the services' schemas
// (docs/migration.md), creating or updating all four schemas first; the executables' `import`
// subcommand does the same with its own service's schema only.
import { ALL_MIGRATIONS } from "../src/import/all-migrations";
import { importCommand } from "../src/import/command";

process.exit(await importCommand(process.argv.slice(2), process.env, ALL_MIGRATIONS));
