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
export const unavailable = (code: string, message: string) => new ServiceError(code, 503, message);

export interface ErrorBody {
  error: { code: string; message: string; request_id: string; details?: unknown };
}

export function errorBody(error: ServiceError, requestId: string): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: error.message, request_id: requestId } };
  if (error.details !== undefined) body.error.details = error.details;
  return body;
}

/** The device WebSocket's `error` frame; `ref` names the request it answers. */
export type ErrorFrame = {
  type: "error";
  code: string;
  message: string;
  ref?: string;
  retry_after_ms?: number;
};

/** An `error` frame for anything thrown: a ServiceError keeps its code, anything else is `internal`. */
export function errorFrame(error: unknown, ref?: string): ErrorFrame {
  const frame: ErrorFrame =
    error instanceof ServiceError
      ? { type: "error", code: error.code, message: error.message }
      : { type: "error", code: "internal", message: "internal error" };
  if (ref) frame.ref = ref;
  const retryAfter = error instanceof ServiceError ? error.headers["retry-after"] : undefined;
  if (retryAfter) frame.retry_after_ms = Number(retryAfter) * 1000;
  return frame;
}
