import type { ServiceModule } from "./app";
import { ensureKeyFiles } from "./auth/keygen";
import { createTokenVerifier, keySourceFromEnv, tokenPolicy } from "./auth/verifier";
import { ConfigError, Env, loadEnv, SERVICE_NAMES, type ServiceName, StartupError } from "./env";
import { createLogger, type Logger } from "./logger";
import { createPlatform, type Platform } from "./platform";
import { assertPortsFree, startServer } from "./server";

export type ServiceFactory = (platform: Platform) => Promise<ServiceModule>;
type Source = Record<string, string | undefined>;

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

/**
 * A platform whose token verifier takes its keys from the environment (mounted PEM or JWKS URL), as
 * every service process builds it; `keyPrefix` namespaces Redis for processes a test starts.
 */
export function platformFromEnv(env: Env, options: { logger: Logger; keyPrefix?: string }): Platform {
  const keySource = keySourceFromEnv(env);
  if (!keySource) throw new ConfigError("invalid configuration: JWT_PUBLIC_KEY_FILE or JWKS_URL must be set");
  const verifier = createTokenVerifier({ source: keySource, ...tokenPolicy(env) });
  return createPlatform({ env, logger: options.logger, verifier, keyPrefix: options.keyPrefix });
}

/**
 * The process entry: starts the services SERVICE_NAME selects (every one for `all`) on one server,
 * and shuts down gracefully on SIGTERM/SIGINT (a second signal exits at once). It listens at once
 * and waits for PostgreSQL and Redis in the background (`startServer`); what waiting cannot fix
 * (configuration, a port in use, refused credentials) exits 1 with one line.
 */
export async function runServices(factories: Partial<Record<ServiceName, ServiceFactory>>, source: Source) {
  try {
    await startServices(factories, source);
  } catch (error) {
    exitOnStartupFailure(error, source.SERVICE_NAME);
  }
}

async function startServices(factories: Partial<Record<ServiceName, ServiceFactory>>, source: Source) {
  const parsed = loadEnv(source);
  assertPortsFree(parsed.PORT, parsed.METRICS_PORT, parsed.HOST);
  const env = await withDevelopmentKeys(parsed);
  const logger = createLogger({ service: env.SERVICE_NAME, level: env.LOG_LEVEL });
  const names = env.SERVICE_NAME === "all" ? SERVICE_NAMES : [env.SERVICE_NAME];
  const platform = platformFromEnv(env, { logger });
  const modules: ServiceModule[] = [];
  for (const name of names) {
    const factory = factories[name];
    if (!factory) throw new ConfigError(`invalid configuration: SERVICE_NAME ${name} is not part of this build`);
    modules.push(await factory(platform));
  }
  const server = await startServer({ platform, modules, waitUntilReady: false });
  server.ready.catch((error) => exitOnStartupFailure(error, env.SERVICE_NAME));
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) process.exit(1);
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

/**
 * Logs one JSON line for a start-up failure and exits 1: an expected one (configuration, an
 * unreachable dependency, a port in use) as its message alone, anything else with its stack. Printed
 * whatever LOG_LEVEL says, which may itself be the variable at fault.
 */
export function exitOnStartupFailure(error: unknown, service = "adiuva"): never {
  const logger = createLogger({ service, level: "fatal" });
  if (error instanceof StartupError) logger.fatal(error.message);
  else logger.fatal({ err: error }, "failed to start");
  process.exit(1);
}

/**
 * `<executable> healthcheck`: 0 when this container's own /health answers, else 1. Docker's
 * HEALTHCHECK runs it because the runtime image has no shell or curl.
 */
export async function healthcheck(source: Source, timeoutMs = 3000): Promise<number> {
  const port = Env.shape.PORT.safeParse(source.PORT);
  if (!port.success) {
    console.error(`PORT: ${port.error.issues[0]?.message}`);
    return 1;
  }
  try {
    const response = await fetch(`http://127.0.0.1:${port.data}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok ? 0 : 1;
  } catch (error) {
    console.error(`health check failed: ${(error as Error).message}`);
    return 1;
  }
}
