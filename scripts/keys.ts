// `bun run keys [dir]`: generates the RS256 key pair and the master key (never overwrites); the
// executables' `keys` subcommand does the same.
import { keysCommand } from "../src/entries/entry";

process.exit(await keysCommand(process.argv.slice(2)));
