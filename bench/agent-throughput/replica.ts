// One agent worker replica as its own process, with an instant device and model: what remains is
// the server's own cost per file (queue, database, bookkeeping). Env as for the service; argv: key prefix.
import { createAgentService } from "../../src/agent";
import { loadEnv } from "../../src/shared/env";
import { silentLogger } from "../../src/shared/logger";
import { platformFromEnv } from "../../src/shared/run";
import { startServer } from "../../src/shared/server";
import { instantDevice, instantModels } from "./instant";

const env = loadEnv({ ...process.env, SERVICE_NAME: "agent" });
const platform = platformFromEnv(env, { logger: silentLogger(), keyPrefix: process.argv[2] });
const device = instantDevice(Number(process.env.BENCH_FILES ?? 250));
const server = await startServer({
  platform,
  modules: [await createAgentService(platform, { rpc: device, push: device, models: instantModels() })],
  port: 0,
  hostname: "127.0.0.1",
});
console.log("ready");
const cpuAtStart = process.cpuUsage();
process.on("SIGTERM", () => {
  // CPU this replica spent (user + system), the load-independent cost of the files it processed.
  const used = process.cpuUsage(cpuAtStart);
  console.log(`cpu ${(used.user + used.system) / 1000}`);
  server.stop().then(() => process.exit(0));
});
