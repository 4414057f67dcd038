// `bun run keys [dir]`: generates the RS256 key pair, the master key, the database password and the
// plugin pseudonym key (never overwrites); the executables' `keys` subcommand does the same.
import { keysCommand } from "../src/entries/entry";

process.exit(await keysCommand(process.argv.slice(2)));
