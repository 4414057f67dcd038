// The chat executable: only chat's code is compiled in (scripts/build.ts).
import { createChatService } from "../chat";
import { runEntry } from "./entry";

await runEntry("chat", createChatService, process.argv, process.env);
