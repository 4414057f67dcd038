import { type AnyElysia, Elysia } from "elysia";
import { allowedMethods } from "./allowed-methods";
import { corsPlugin } from "./cors";
import { docsPlugin } from "./docs";
import { httpPlugin } from "./http";
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
  /** Runs before the server accepts traffic (migrations, subscriptions). */
  start?(): Promise<void>;
  /** Stops background work; the server has already stopped accepting requests. */
  stop?(): Promise<void>;
}

export interface AppOptions {
  platform: Platform;
  modules: ServiceModule[];
  /** Set by graceful shutdown: /ready answers 503 while draining. */
  isDraining?: () => boolean;
}

/**
 * The root application: HTTP plugin, operational endpoints, docs, then each service's routes.
 * /metrics is not among them: it has a port of its own (`startServer`).
 */
export function createApp({ platform, modules, isDraining = () => false }: AppOptions) {
  const serviceLabel = modules.length === 1 ? (modules[0]?.name ?? "none") : "all";
  const docsPath = modules.length === 1 ? `${modules[0]?.prefix}/docs` : "/docs";
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
          set.status = isDraining() ? 503 : 200;
          return { status: isDraining() ? "draining" : "ready" };
        }
        const checks = await readiness(platform);
        const ok = !isDraining() && Object.values(checks).every((check) => check !== "down");
        set.status = ok ? 200 : 503;
        return { status: ok ? "ready" : isDraining() ? "draining" : "unavailable", checks };
      },
      { detail: { hide: true } },
    ) as AnyElysia;
  for (const module of modules) app = app.use(module.plugin);
  return app;
}

async function readiness(platform: Platform): Promise<Record<string, string>> {
  const checks: Record<string, string> = {};
  const [db, redis] = await Promise.allSettled([
    platform.database.ping(1500),
    platform.redis ? pingRedis(platform.redis, 1500) : Promise.resolve(),
  ]);
  checks.database = db.status === "fulfilled" ? "ok" : "down";
  checks.redis = !platform.redis ? "embedded" : redis.status === "fulfilled" ? "ok" : "down";
  return checks;
}
