// An agent replica in its own process, so a test or benchmark can SIGKILL it mid-run. Its world
// comes from the environment (DATABASE_URL, REDIS_URL, LLM_BASE_URL, JWT_PUBLIC_KEY_FILE, AGENT_*)
// and the key prefix of the test from argv; it prints the usual "listening" log line.
import { createAgentService } from "../../../src/agent";
import { loadEnv } from "../../../src/shared/env";
import { createLogger } from "../../../src/shared/logger";
import { platformFromEnv } from "../../../src/shared/run";
import { startServer } from "../../../src/shared/server";

const keyPrefix = process.argv[2];
const env = loadEnv({ ...process.env, SERVICE_NAME: "agent" });
const platform = platformFromEnv(env, { logger: createLogger({ service: "agent", level: env.LOG_LEVEL }), keyPrefix });
const server = await startServer({
  platform,
  modules: [await createAgentService(platform)],
  port: 0,
  hostname: "127.0.0.1",
});
process.on("SIGTERM", () => server.stop().then(() => process.exit(0)));
