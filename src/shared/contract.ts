import { z } from "zod";

/**
 * The HTTP contract's named schemas: every request and response model registered here becomes one
 * entry of `components.schemas` in the OpenAPI documents, referenced by name wherever it appears,
 * so generated clients get one type per shape.
 */
export const apiSchemas = z.registry<{ id: string }>();

/** Registers a model under its wire name; returns the same schema. */
export function named<T extends z.ZodType>(id: string, schema: T): T {
  apiSchemas.add(schema as z.ZodType, { id });
  return schema;
}

/** `{ error: { code, message, request_id } }`: the one error shape of every service (`errorBody`). */
export const ErrorBody = named(
  "Error",
  z.object({
    error: z.object({
      /** Stable, machine-readable (`not_found`, `rate_limited`, `validation_failed`...). */
      code: z.string(),
      message: z.string(),
      request_id: z.string(),
      /** Structured detail safe to show, e.g. validation issues `[{ path, message }]`. */
      details: z.unknown().optional(),
    }),
  }),
);
export type ErrorBody = z.infer<typeof ErrorBody>;

/** A 204: no body. */
export const NoContent = z.void();

export type ErrorStatus = 400 | 401 | 402 | 403 | 404 | 405 | 409 | 410 | 413 | 415 | 422 | 429 | 502 | 503;

/** What every route behind the bearer guard may answer besides its own: bad token, rate limit, outage. */
export const SIGNED_IN = [401, 429, 503] as const;
/** What a JSON body adds: unparsable (400), too large (413), not JSON (415), invalid (422). */
export const JSON_BODY = [400, 413, 415, 422] as const;

/**
 * A route's `response`: its success models plus the error shape under every error status it can
 * answer. Elysia checks the handler against it, Eden Treaty types `data` and `error` from it, and
 * the OpenAPI document lists exactly these responses.
 */
export function responses<const Success extends Record<number, z.ZodType>, const Status extends ErrorStatus>(
  success: Success,
  ...statuses: ReadonlyArray<Status>
): Success & { [S in Status]: typeof ErrorBody } {
  const errors = Object.fromEntries(statuses.map((status) => [status, ErrorBody]));
  return { ...success, ...errors } as Success & { [S in Status]: typeof ErrorBody };
}

/** The security requirement of a route that takes `Authorization: Bearer <access token>`. */
export const BEARER_SECURITY = [{ bearer: [] as string[] }];
