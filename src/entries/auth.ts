// The auth executable: only auth's code is compiled in (scripts/build.ts).
import { createAuthService } from "../auth";
import { runEntry } from "./entry";

await runEntry("auth", createAuthService, process.argv, process.env);
