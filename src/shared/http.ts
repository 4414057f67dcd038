import { Elysia } from "elysia";
import { databaseUnavailable, errorBody, isDatabaseOutage, ServiceError, UnconfiguredError } from "./errors";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";
import { hasDotSegment, isRefusedPath } from "./path-guard";

export interface RequestMeta {
  id: string;
  startedAt: number;
}

const requestMeta = new WeakMap<Request, RequestMeta>();
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id of a request seen by the HTTP plugin (a caller's valid X-Request-Id is kept). */
export function requestIdOf(request: Request): string {
  return requestMeta.get(request)?.id ?? "unknown";
}

export interface HttpPluginOptions {
  service: string;
  logger: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  /** The methods the application serves on a path, for the 405 of a known path with another method. */
  allowedMethods?: (path: string) => string[];
}

/**
 * Request ids, JSON access logs, Prometheus request metrics, the body-size limit and the single
 * error renderer. Used once at the root of the application; its hooks are global on purpose.
 */
export function httpPlugin(options: HttpPluginOptions) {
  const { logger, metrics, service } = options;
  return new Elysia({ name: "adiuva-http", seed: service })
    .onRequest(({ request, set }) => {
      const incoming = request.headers.get("x-request-id");
      const id = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
      requestMeta.set(request, { id, startedAt: performance.now() });
      set.headers["x-request-id"] = id;
      if (isRefusedPath(request)) {
        set.status = 404;
        return Response.json(errorBody(noSuchRoute(), id), { status: 404, headers: earlyHeaders(set.headers) });
      }
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > options.maxBodyBytes) {
        // Answered here, before the body is read; returning from onRequest ends the request.
        const error = new ServiceError("payload_too_large", 413, `request body exceeds ${options.maxBodyBytes} bytes`);
        set.status = 413;
        return Response.json(errorBody(error, id), { status: 413, headers: earlyHeaders(set.headers) });
      }
    })
    .onTransform({ as: "global" }, ({ params }) => {
      if (hasDotSegment(params as Record<string, string | undefined>)) throw noSuchRoute();
    })
    .onError({ as: "global" }, ({ code, error, request, set, path }) => {
      const requestId = requestIdOf(request);
      const serviceError = toServiceError(code, error, () => options.allowedMethods?.(new URL(request.url).pathname));
      set.status = serviceError.status;
      for (const [name, value] of Object.entries(serviceError.headers)) set.headers[name] = value;
      set.headers["content-type"] = "application/json";
      if (error instanceof UnconfiguredError) {
        logger.warn({ code: error.code, missing: error.missing, request_id: requestId, path }, "not configured");
      } else if (serviceError.status >= 500) {
        logger.error({ err: error, request_id: requestId, path }, "request failed");
      }
      return errorBody(serviceError, requestId);
    })
    .onAfterResponse({ as: "global" }, ({ request, set, route, path, ...rest }) => {
      const meta = requestMeta.get(request);
      const status = typeof set.status === "number" ? set.status : 200;
      const seconds = meta ? (performance.now() - meta.startedAt) / 1000 : 0;
      // Unmatched paths share one label so scanners cannot blow up the metric's cardinality.
      const routeLabel = route || "unmatched";
      const labels = { service, method: request.method, route: routeLabel, status: String(status) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      const user = (rest as { user?: { userId?: string } }).user;
      // Probes arrive every few seconds from Docker and Traefik on every replica: at info they
      // would outnumber the requests of users.
      const level = PROBE_PATHS.has(path) ? "debug" : "info";
      logger[level](
        {
          request_id: meta?.id,
          method: request.method,
          path,
          route: routeLabel,
          status,
          ms: Math.round(seconds * 1000 * 100) / 100,
          user_id: user?.userId,
        },
        "request",
      );
    });
}

const PROBE_PATHS = new Set(["/health", "/ready"]);

const noSuchRoute = () => new ServiceError("not_found", 404, "no such route");

/** A response returned from onRequest skips Elysia's headers: take the request id (and CORS) along. */
const earlyHeaders = (headers: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)]));

function toServiceError(code: string | number, error: unknown, allowed: () => string[] | undefined): ServiceError {
  if (error instanceof ServiceError) return error;
  switch (code) {
    case "NOT_FOUND": {
      const methods = allowed();
      if (!methods?.length) return noSuchRoute();
      return new ServiceError("method_not_allowed", 405, `this path takes ${methods.join(", ")}`, {
        allow: methods.join(", "),
      });
    }
    case "VALIDATION":
      // A response that fails its own schema is our bug, not the caller's.
      if ((error as { type?: unknown }).type === "response") return new ServiceError("internal", 500, "internal error");
      return new ServiceError("validation_failed", 422, "request failed validation", {}, validationDetails(error));
    case "PARSE":
      // A parse hook's refusal (415 from the sanitizer) arrives wrapped.
      if ((error as Error).cause instanceof ServiceError) return (error as Error).cause as ServiceError;
      return new ServiceError("malformed_body", 400, "request body could not be parsed");
    case "INVALID_COOKIE_SIGNATURE":
      return new ServiceError("invalid_cookie", 400, "invalid cookie signature");
    case "INVALID_FILE_TYPE":
      return new ServiceError("invalid_file_type", 422, "invalid file type");
    default: {
      const status = (error as { status?: unknown })?.status;
      if (typeof status === "number" && status >= 400 && status < 500) {
        return new ServiceError("bad_request", status, (error as Error).message || "bad request");
      }
      if (isDatabaseOutage(error)) return databaseUnavailable();
      return new ServiceError("internal", 500, "internal error");
    }
  }
}

/** Elysia's ValidationError carries every issue; keep path and message, never echo values back. */
function validationDetails(error: unknown): unknown {
  const all = (error as { all?: Array<{ path?: unknown; message?: unknown; summary?: unknown }> }).all;
  if (!Array.isArray(all)) return undefined;
  return all.slice(0, 20).map((issue) => ({
    path: typeof issue.path === "string" ? issue.path.replace(/^\//, "").replace(/\//g, ".") : issue.path,
    message: issue.message ?? issue.summary,
  }));
}
