import { serviceFactories } from "./services";
import { exitOnStartupFailure, healthcheck, runServices } from "./shared/run";

if (process.argv[2] === "healthcheck") {
  process.exit(await healthcheck(process.env));
}
// Every service, as SERVICE_NAME says; the compiled executables start from src/entries/ instead.
await runServices(serviceFactories, process.env).catch(exitOnStartupFailure);
