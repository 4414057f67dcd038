import type { ErrorFrame } from "../protocol";

/**
 * One error family for every service. Verbs throw these; the HTTP plugin renders them as
 * `{ error: { code, message, request_id } }` and the WebSocket layer as an `error` frame.
 */
export class ServiceError extends Error {
  override name = "ServiceError";
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra response headers (Retry-After, RateLimit...). */
    readonly headers: Record<string, string> = {},
    /** Structured detail safe to show the client (e.g. validation issues). */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const badRequest = (code: string, message: string, details?: unknown) =>
  new ServiceError(code, 400, message, {}, details);
export const unauthorized = (code = "unauthorized", message = "missing or invalid credentials") =>
  new ServiceError(code, 401, message);
export const forbidden = (code: string, message: string) => new ServiceError(code, 403, message);
export const notFound = (what = "resource") => new ServiceError("not_found", 404, `${what} not found`);
export const conflict = (code: string, message: string) => new ServiceError(code, 409, message);
export const unprocessable = (message: string, details?: unknown) =>
  new ServiceError("validation_failed", 422, message, {}, details);
export const tooManyRequests = (code: string, message: string, headers: Record<string, string>) =>
  new ServiceError(code, 429, message, headers);
/** A schema's issues as the 422 `details` list: dotted paths (under `prefix`), messages, never values. */
export function issueDetails(
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>,
  prefix: string[] = [],
  max = 20,
): Array<{ path: string; message: string }> {
  return issues.slice(0, max).map((issue) => ({
    path: [...prefix, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}
export const unavailable = (code: string, message: string) => new ServiceError(code, 503, message);

/**
 * 503 for a feature this deployment has not configured: the body names the missing variables, and
 * it is logged at warn without a stack (an operator's to-do, not a crash).
 */
export class UnconfiguredError extends ServiceError {
  override name = "UnconfiguredError";
  constructor(
    code: string,
    message: string,
    readonly missing: string[],
  ) {
    super(code, 503, `${message} (${missing.join(", ")} not set)`, {}, { missing });
  }
}

/** Seconds a client should wait before retrying while the database is unreachable. */
const RETRY_AFTER_S = 2;

/** The one answer a request gets while PostgreSQL cannot serve it: 503 with Retry-After. */
export const databaseUnavailable = () =>
  new ServiceError("database_unavailable", 503, "the database is unavailable, try again shortly", {
    "retry-after": String(RETRY_AFTER_S),
  });

/** postgres.js connection failures and network errors: the database is away, not the request wrong. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATEs meaning the server cannot serve now: connection exceptions (08), shutting down or
 * starting up (57P01-57P03), too many connections (53300), and a statement cancelled (57014) by
 * `statement_timeout` or by our own deadline on a query that never got a connection.
 */
const UNAVAILABLE_STATES = /^(08...|57P0[123]|53300|57014)$/;

/** True when `error` (or what it wraps: drizzle puts the driver's error in `cause`) is an outage. */
export function isDatabaseOutage(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === "object" && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || UNAVAILABLE_STATES.test(code))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** A network failure in the words of a start-up line ("PostgreSQL at host:port …"), if it is one. */
export function networkProblem(code: string | undefined): string | undefined {
  if (code === "ECONNREFUSED") return "refused the connection";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "cannot be resolved";
  return undefined;
}

export interface ErrorBody {
  error: { code: string; message: string; request_id: string; details?: unknown };
}

export function errorBody(error: ServiceError, requestId: string): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: error.message, request_id: requestId } };
  if (error.details !== undefined) body.error.details = error.details;
  return body;
}

export type { ErrorFrame } from "../protocol";

/**
 * An `error` frame for anything thrown: a ServiceError keeps its code, a database outage is
 * `database_unavailable`, anything else is `internal`.
 */
export function errorFrame(thrown: unknown, ref?: string): ErrorFrame {
  const error = isDatabaseOutage(thrown) ? databaseUnavailable() : thrown;
  const frame: ErrorFrame =
    error instanceof ServiceError
      ? { type: "error", code: error.code, message: error.message }
      : { type: "error", code: "internal", message: "internal error" };
  if (ref) frame.ref = ref;
  const retryAfter = error instanceof ServiceError ? error.headers["retry-after"] : undefined;
  if (retryAfter) frame.retry_after_ms = Number(retryAfter) * 1000;
  return frame;
}
