import { createAgentService } from "./agent";
import { createAuthService } from "./auth";
import { createBillingService } from "./billing";
import { createChatService } from "./chat";
import type { ServiceModule } from "./shared/app";
import { ensureKeyFiles } from "./shared/auth/keygen";
import { createTokenVerifier, keySourceFromEnv } from "./shared/auth/verifier";
import { ConfigError, type Env, loadEnv, SERVICE_NAMES, type ServiceName } from "./shared/env";
import { createLogger } from "./shared/logger";
import { createPlatform, type Platform } from "./shared/platform";
import { startServer } from "./shared/server";

const factories: Record<ServiceName, (platform: Platform) => Promise<ServiceModule>> = {
  auth: createAuthService,
  chat: createChatService,
  agent: createAgentService,
  billing: createBillingService,
};

/**
 * Development convenience: with no key files configured, generate them under DATA_DIR so every
 * service uses the same code path as production. Production must mount real ones (loadEnv checks).
 */
async function withDevelopmentKeys(env: Env): Promise<Env> {
  if (env.NODE_ENV === "production") return env;
  if (env.JWT_PRIVATE_KEY_FILE && (env.JWT_PUBLIC_KEY_FILE || env.JWKS_URL) && env.MASTER_KEY_FILE) return env;
  const { paths } = await ensureKeyFiles(`${env.DATA_DIR}/keys`);
  return {
    ...env,
    JWT_PRIVATE_KEY_FILE: env.JWT_PRIVATE_KEY_FILE ?? paths.privateKey,
    JWT_PUBLIC_KEY_FILE: env.JWT_PUBLIC_KEY_FILE ?? (env.JWKS_URL ? undefined : paths.publicKey),
    MASTER_KEY_FILE: env.MASTER_KEY_FILE ?? paths.masterKey,
  };
}

async function main(): Promise<void> {
  const env = await withDevelopmentKeys(
    loadEnv({ ...process.env, SERVICE_NAME: process.env.SERVICE_NAME ?? process.env.DEFAULT_SERVICE_NAME }),
  );
  const logger = createLogger({ service: env.SERVICE_NAME, level: env.LOG_LEVEL });
  const source = keySourceFromEnv(env);
  if (!source) throw new ConfigError("invalid configuration: JWT_PUBLIC_KEY_FILE or JWKS_URL must be set");
  const verifier = createTokenVerifier({ source, issuer: env.JWT_ISSUER });
  const platform = createPlatform({ env, logger, verifier });
  const names = env.SERVICE_NAME === "all" ? SERVICE_NAMES : [env.SERVICE_NAME];
  const modules: ServiceModule[] = [];
  for (const name of names) modules.push(await factories[name](platform));
  const server = await startServer({ platform, modules });
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) process.exit(1); // a second signal means "now"
    platform.logger.info({ signal }, "shutting down");
    server.stop().then(
      () => process.exit(0),
      (error) => {
        platform.logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
  } else {
    console.error("failed to start:", error instanceof Error ? (error.stack ?? error.message) : error);
  }
  process.exit(1);
});
