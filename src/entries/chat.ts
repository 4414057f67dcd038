// The chat executable: only chat's service is compiled in (scripts/build.ts); the import subcommand
// adds the other services' tables, never their services or migrations.
import { createChatService } from "../chat";
import { migrations } from "../chat/migrations";
import { runEntry } from "./entry";

await runEntry("chat", createChatService, process.argv, process.env, migrations);
