import { Elysia } from "elysia";

/** What a listed origin may send: every method the services route, and the headers clients set. */
export const CORS_ALLOW_METHODS = "GET, POST, PUT, DELETE";
export const CORS_ALLOW_HEADERS = "Authorization, Content-Type, Accept, X-Request-Id";
/** Response headers a page may read besides the safelisted ones: ids for support, limits for backoff. */
export const CORS_EXPOSE_HEADERS = "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy";
/** How long a browser may reuse a preflight's answer. */
export const CORS_MAX_AGE_S = 600;

/**
 * Cross-origin access for the origins in `CORS_ORIGINS` (the app's renderer), on every service.
 * Requests carry bearer tokens, never cookies, so credentials are not allowed; an origin not listed
 * gets no CORS header at all and the browser keeps the response from it. A preflight of a listed
 * origin is answered here with 204, before routing: no route declares OPTIONS.
 */
export function corsPlugin(origins: readonly string[]) {
  const allowed = new Set(origins);
  return new Elysia({ name: "adiuva-cors", seed: [...allowed].join(",") }).onRequest(({ request, set }) => {
    if (allowed.size === 0) return;
    // Responses differ by origin: a shared cache must not hand one origin's answer to another.
    set.headers.vary = "Origin";
    const origin = request.headers.get("origin");
    if (!origin || !allowed.has(origin)) return;
    set.headers["access-control-allow-origin"] = origin;
    if (request.method === "OPTIONS" && request.headers.has("access-control-request-method")) {
      return new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-origin": origin,
          "access-control-allow-methods": CORS_ALLOW_METHODS,
          "access-control-allow-headers": CORS_ALLOW_HEADERS,
          "access-control-max-age": String(CORS_MAX_AGE_S),
          vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
      });
    }
    set.headers["access-control-expose-headers"] = CORS_EXPOSE_HEADERS;
  });
}
