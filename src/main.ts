import { serviceFactories } from "./services";
import { exitOnStartupFailure, healthcheck, runServices } from "./shared/run";

if (process.argv[2] === "healthcheck") {
  process.exit(await healthcheck(process.env));
}
// Compiled executables carry their own name (scripts/build.ts); SERVICE_NAME still overrides it.
await runServices(serviceFactories, {
  ...process.env,
  SERVICE_NAME: process.env.SERVICE_NAME ?? process.env.DEFAULT_SERVICE_NAME,
}).catch(exitOnStartupFailure);
