// The billing executable: only billing's code is compiled in (scripts/build.ts).
import { createBillingService } from "../billing";
import { runEntry } from "./entry";

await runEntry("billing", createBillingService, process.argv, process.env);
