import { type AnyElysia, Elysia } from "elysia";
import { allowedMethods } from "./allowed-methods";
import { corsPlugin } from "./cors";
import { docsPlugin } from "./docs";
import { errorBody, ServiceError } from "./errors";
import { httpPlugin, requestIdOf } from "./http";
import { catchAllRoute } from "./path-guard";
import type { Platform } from "./platform";
import { pingRedis } from "./redis";

/**
 * What every service factory returns: its routes as an Elysia plugin, plus start/stop for what
 * lives beside the routes (migrations, consumers, sockets).
 */
export interface ServiceModule {
  name: string;
  /** Where Traefik sends this service's traffic; also where its OpenAPI docs live. */
  prefix: string;
  plugin: AnyElysia;
  /** Runs once the dependencies answer, before API routes are served (migrations, subscriptions). */
  start?(): Promise<void>;
  /** Stops background work; the server has already stopped accepting requests. */
  stop?(): Promise<void>;
}

export interface AppOptions {
  platform: Platform;
  modules: ServiceModule[];
  /** Set by graceful shutdown: /ready answers 503 while draining. */
  isDraining?: () => boolean;
  /** False until the modules have started: /ready answers `starting` and API routes 503. */
  isStarted?: () => boolean;
}

/** Seconds a client waits before retrying a request that arrived while the process was starting. */
const STARTING_RETRY_AFTER_S = 2;

/** Answered before the modules have started, when nothing else is: the load balancer's probes. */
const ALWAYS_SERVED = new Set(["/health", "/ready"]);

/**
 * The root application: HTTP plugin, operational endpoints, docs, then each service's routes.
 * /metrics is not among them: it has a port of its own (`startServer`).
 */
export function createApp({ platform, modules, isDraining = () => false, isStarted = () => true }: AppOptions) {
  const serviceLabel = modules.length === 1 ? (modules[0]?.name ?? "none") : "all";
  const docsPath = modules.length === 1 ? `${modules[0]?.prefix}/docs` : "/docs";
  // /ready's answer as a metric, read at each scrape: the readiness alert needs no one to call /ready.
  // Pings shorter than gaugeFrom's one-second cap, so a hanging store reads as down, not as the last value.
  platform.metrics.gaugeFrom(
    "service_ready",
    "1 when /ready answers 200: started, PostgreSQL and Redis answer, not draining",
    async () => {
      if (isDraining() || !isStarted()) return 0;
      const checks = await readiness(platform, 800);
      return Object.values(checks).every((check) => check !== "down") ? 1 : 0;
    },
  );
  // Bun's route table gets a catch-all, so paths spelled with dot segments never reach a handler.
  let app = new Elysia({ serve: { routes: { "/*": catchAllRoute(() => app) } } })
    // First, so a preflight is answered before anything else and every answer carries the headers.
    .use(corsPlugin(platform.env.CORS_ORIGINS))
    .use(
      httpPlugin({
        service: serviceLabel,
        logger: platform.logger,
        metrics: platform.metrics,
        maxBodyBytes: platform.env.MAX_BODY_BYTES,
        allowedMethods: allowedMethods(() => app),
      }),
    )
    // Until migrations and consumers have run, a route would meet tables or subscriptions not yet
    // there: every request but the probes gets a 503 telling the client to come back.
    .onRequest(({ request, set }) => {
      if (isStarted() || ALWAYS_SERVED.has(new URL(request.url).pathname)) return;
      const error = new ServiceError("starting", 503, "the service is starting, try again shortly");
      set.status = 503;
      set.headers["retry-after"] = String(STARTING_RETRY_AFTER_S);
      const headers = Object.fromEntries(Object.entries(set.headers).map(([name, value]) => [name, String(value)]));
      return Response.json(errorBody(error, requestIdOf(request)), { status: 503, headers });
    })
    // A production deployment shows its API surface only when an operator opts in.
    .use(
      platform.env.NODE_ENV !== "production" || platform.env.DOCS_PUBLIC
        ? docsPlugin({ path: docsPath, title: `Adiuva ${serviceLabel} API`, version: "1", routes: () => app.routes })
        : new Elysia({ name: "adiuva-docs-off" }),
    )
    // Operational, not part of the API: left out of the OpenAPI document.
    .get("/health", () => ({ status: "ok", service: serviceLabel, instance: platform.instanceId }), {
      detail: { hide: true },
    })
    .get(
      "/ready",
      async ({ set, query }) => {
        // The load balancer asks about this instance alone: PostgreSQL or Redis being down is the
        // same for every replica, and taking them all out of rotation would turn a degraded service
        // (the services outlive a Redis outage) into no service.
        if (query.scope === "instance") {
          const status = isDraining() ? "draining" : isStarted() ? "ready" : "starting";
          set.status = status === "ready" ? 200 : 503;
          return { status };
        }
        const checks = await readiness(platform);
        if (!isStarted() && !isDraining()) {
          set.status = 503;
          const down = Object.keys(checks).filter((name) => checks[name] === "down");
          // Every dependency answering: the modules are starting (migrations, subscriptions).
          return { status: "starting", checks, waiting_for: down.length > 0 ? down : ["modules"] };
        }
        const ok = !isDraining() && Object.values(checks).every((check) => check !== "down");
        set.status = ok ? 200 : 503;
        return { status: ok ? "ready" : isDraining() ? "draining" : "unavailable", checks };
      },
      { detail: { hide: true } },
    ) as AnyElysia;
  for (const module of modules) app = app.use(module.plugin);
  return app;
}

async function readiness(platform: Platform, timeoutMs = 1500): Promise<Record<string, string>> {
  const checks: Record<string, string> = {};
  const [db, redis] = await Promise.allSettled([
    platform.database.ping(timeoutMs),
    platform.redis ? pingRedis(platform.redis, timeoutMs) : Promise.resolve(),
  ]);
  checks.database = db.status === "fulfilled" ? "ok" : "down";
  checks.redis = !platform.redis ? "embedded" : redis.status === "fulfilled" ? "ok" : "down";
  return checks;
}
