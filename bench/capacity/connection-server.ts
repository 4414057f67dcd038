// The server side of bench/capacity/connections.ts: the chat service alone in its process, as
// bench/connections/server.ts builds it (same platform, same service), with the device settings
// (DEVICE_LEASE_TTL_MS, DEVICE_HEARTBEAT_S, DEVICE_INSTANCE_TTL_MS) taken from the environment so
// their cost can be compared. `bun connection-server.ts <key prefix>`; prints {"port"}; each
// "measure" line on stdin answers with the process's memory after a full GC.
import { createChatService } from "../../src/chat";
import { createTokenVerifier, tokenPolicy } from "../../src/shared/auth/verifier";
import { loadEnv } from "../../src/shared/env";
import { silentLogger } from "../../src/shared/logger";
import { createPlatform } from "../../src/shared/platform";
import { startServer } from "../../src/shared/server";

const env = loadEnv({
  SERVICE_NAME: "chat",
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  DATABASE_URL: process.env.DATABASE_URL,
  REDIS_URL: process.env.REDIS_URL,
  DEVICE_LEASE_TTL_MS: process.env.DEVICE_LEASE_TTL_MS,
  DEVICE_HEARTBEAT_S: process.env.DEVICE_HEARTBEAT_S,
  DEVICE_INSTANCE_TTL_MS: process.env.DEVICE_INSTANCE_TTL_MS,
});
const platform = createPlatform({
  env,
  logger: silentLogger(),
  verifier: createTokenVerifier({ source: { kind: "pem", pem: process.env.BENCH_PUBLIC_PEM! }, ...tokenPolicy(env) }),
  keyPrefix: process.argv[2],
});
const { port } = await startServer({ platform, modules: [await createChatService(platform)], port: 0 });
console.log(JSON.stringify({ port }));
for await (const line of console) {
  if (line.trim() !== "measure") continue;
  Bun.gc(true);
  await Bun.sleep(200);
  Bun.gc(true);
  const { rss, heapUsed } = process.memoryUsage();
  console.log(JSON.stringify({ rss, heapUsed }));
}
