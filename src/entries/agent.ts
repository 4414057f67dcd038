// The agent executable: only agent's code is compiled in (scripts/build.ts).
import { createAgentService } from "../agent";
import { runEntry } from "./entry";

await runEntry("agent", createAgentService, process.argv, process.env);
