import type { AnyElysia } from "elysia";
import { createApp, type ServiceModule } from "./app";
import { dependenciesOf, waitForDependencies } from "./dependencies";
import { ConfigError, StartupError } from "./env";
import { closePlatform, type Platform } from "./platform";
import { withTimeout } from "./timeout";

export interface RunningServer {
  app: AnyElysia;
  port: number;
  url: string;
  /** The Prometheus endpoint's own port and its /metrics URL; the public port does not serve it. */
  metricsPort: number;
  metricsUrl: string;
  /**
   * Settles once the dependencies answered and the modules started (API routes served from then
   * on); rejects with what waiting cannot fix. Already settled when `startServer` waited for it.
   */
  ready: Promise<void>;
  /** Graceful shutdown: stop accepting, drain in-flight requests, stop modules, close pools. */
  stop(): Promise<void>;
}

/** Where Prometheus scrapes when METRICS_PORT is unset (the OpenTelemetry exporter's usual port). */
export const DEFAULT_METRICS_PORT = 9464;

/**
 * Listens at once (HTTP/WebSocket server and, on a port of its own, the Prometheus endpoint), then
 * waits for PostgreSQL and Redis with backoff and starts the modules (migrations, consumers) once
 * they answer. Until then /health answers, /ready says `starting` and every other route 503.
 */
export async function startServer(options: {
  platform: Platform;
  modules: ServiceModule[];
  port?: number;
  /** Unset: METRICS_PORT, else 9464, or any free port when the public port is 0. */
  metricsPort?: number;
  hostname?: string;
  /**
   * True (the default, for tests and embedders): resolve once ready, stopping and rethrowing when
   * start fails. False (the process entry): resolve once listening, `ready` tells the rest.
   */
  waitUntilReady?: boolean;
}): Promise<RunningServer> {
  const { platform, modules } = options;
  const requestedPort = options.port ?? platform.env.PORT;
  const requestedMetricsPort =
    options.metricsPort ?? platform.env.METRICS_PORT ?? (requestedPort === 0 ? 0 : DEFAULT_METRICS_PORT);
  if (requestedMetricsPort !== 0 && requestedMetricsPort === requestedPort) {
    throw new ConfigError("invalid configuration: METRICS_PORT must differ from PORT");
  }
  const hostname = options.hostname ?? platform.env.HOST;
  assertPortsFree(requestedPort, requestedMetricsPort, hostname);
  let draining = false;
  let started = false;
  const startedModules: ServiceModule[] = [];
  const stopping = new AbortController();
  const app = createApp({ platform, modules, isDraining: () => draining, isStarted: () => started });
  const listen = (settings: Parameters<typeof app.listen>[0]) =>
    asStartupError(() => app.listen(settings), `port ${requestedPort} is in use`);
  listen({
    port: requestedPort,
    hostname,
    // Elysia turns SO_REUSEPORT on: a second process on the same port would then share the traffic
    // silently instead of failing.
    reusePort: false,
    // Bun's own hard cap sits well above ours: a declared length over ours gets our 413 in the
    // error shape before the body is read; Bun's cap only stops unbounded chunked uploads.
    maxRequestBodySize: Math.max(platform.env.MAX_BODY_BYTES * 8, 8 * 1024 * 1024),
    // The device socket's frames: Bun reads a frame's length from its header and closes the socket
    // (1009) before buffering one over this. The 64 KiB margin keeps the gateway's own
    // `frame_too_large` error frame (socket kept open) for frames just over DEVICE_MAX_FRAME_BYTES.
    websocket: { maxPayloadLength: platform.env.DEVICE_MAX_FRAME_BYTES + 64 * 1024 },
  });
  const server = app.server;
  if (!server) throw new Error("server did not start");
  const port = server.port ?? 0;
  const url = `http://127.0.0.1:${port}`;
  let metricsServer: Bun.Server<unknown>;
  try {
    metricsServer = asStartupError(
      () => serveMetrics(platform, requestedMetricsPort, hostname),
      `metrics port ${requestedMetricsPort} is in use`,
    );
  } catch (error) {
    await server.stop(true);
    throw error;
  }
  const metricsPort = metricsServer.port ?? 0;
  let stopped: Promise<void> | undefined;
  // Modules bound their own waits by the grace period; this is the backstop past it.
  const stopBoundMs = platform.env.SHUTDOWN_GRACE_MS + 5000;
  const stop = () => {
    stopped ??= (async () => {
      draining = true;
      stopping.abort();
      // Still listening while /ready answers 503: the load balancer's health check takes this
      // instance out of rotation first, so no new request meets a closed port.
      if (platform.env.SHUTDOWN_DRAIN_DELAY_MS > 0) await Bun.sleep(platform.env.SHUTDOWN_DRAIN_DELAY_MS);
      const drained = server.stop(false);
      for (const module of [...startedModules].reverse()) {
        try {
          // A module waiting on an unreachable dependency must not keep the process from exiting.
          if (module.stop) await withTimeout(module.stop(), stopBoundMs, `module ${module.name} stop`);
        } catch (error) {
          platform.logger.warn({ err: error, module: module.name }, "module stop failed");
        }
      }
      const graceful = await Promise.race([
        drained.then(() => true),
        Bun.sleep(platform.env.SHUTDOWN_GRACE_MS).then(() => false),
      ]);
      if (!graceful) {
        platform.logger.warn("in-flight requests did not finish in time; closing them");
        await server.stop(true);
      }
      // Scrapeable while draining; gone with the pools it reports on.
      await metricsServer.stop(true);
      await closePlatform(platform);
    })();
    return stopped;
  };
  const moduleNames = modules.map((module) => module.name);
  platform.logger.info({ port, metrics_port: metricsPort, modules: moduleNames }, "starting");
  const ready = (async () => {
    if (!(await waitForDependencies(platform, dependenciesOf(platform), stopping.signal))) return;
    // Migrations first: the revocations read auth's ledger, which a fresh database gets from auth's.
    for (const module of modules) {
      if (stopping.signal.aborted) return;
      startedModules.push(module);
      await module.start?.();
    }
    // Loaded before the first request, so no request waits for it.
    await platform.revocations.start();
    started = true;
    platform.logger.info({ port, metrics_port: metricsPort, modules: moduleNames }, "listening");
  })();
  const running = { app, port, url, metricsPort, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, ready, stop };
  if (options.waitUntilReady === false) return running;
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return running;
}

const inUse = (error: unknown) => (error as { code?: string }).code === "EADDRINUSE";

/** Runs `bind`, turning "address in use" into a StartupError with `message`. */
function asStartupError<T>(bind: () => T, message: string): T {
  try {
    return bind();
  } catch (error) {
    throw inUse(error) ? new StartupError(message) : error;
  }
}

/** Fails with one line when PORT or METRICS_PORT is taken; run first, before anything else logs. */
export function assertPortsFree(port: number, metricsPort: number | undefined, hostname: string): void {
  assertPortFree(port, hostname, "port");
  assertPortFree(metricsPort ?? (port === 0 ? 0 : DEFAULT_METRICS_PORT), hostname, "metrics port");
}

/** Binds and releases `port` (port 0: any port, always free). */
function assertPortFree(port: number, hostname: string, what: string): void {
  if (port === 0) return;
  const probe = asStartupError(
    () => Bun.listen({ hostname, port, socket: { data() {} } }),
    `${what} ${port} is in use`,
  );
  probe.stop(true);
}

/**
 * GET /metrics and nothing else, on the internal port: Traefik routes only the public port, so
 * no path spelling on the public side can reach it.
 */
function serveMetrics(platform: Platform, port: number, hostname: string): Bun.Server<unknown> {
  const { metrics, logger } = platform;
  return Bun.serve({
    port,
    hostname,
    reusePort: false,
    routes: {
      "/metrics": {
        GET: async () => {
          const startedAt = performance.now();
          const body = await metrics.registry.metrics();
          // Every scrape of every replica: debug, never info.
          logger.debug(
            { path: "/metrics", status: 200, ms: Math.round((performance.now() - startedAt) * 100) / 100 },
            "scrape",
          );
          return new Response(body, { headers: { "content-type": metrics.registry.contentType } });
        },
      },
    },
    fetch: () => new Response("not found\n", { status: 404 }),
  });
}
