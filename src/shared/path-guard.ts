import type { AnyElysia } from "elysia";

/*
 * Bun matches its native routes against the raw request target, while request.url (what Elysia's
 * own router, every hook and every log line see) comes from the URL parser, which resolves `.` and
 * `..` segments, their `%2e` spellings and backslashes. Elysia hands every route it can to Bun's
 * router, so a target spelled with dot segments either misses them all and falls through to
 * Elysia's router with the resolved path (`/api/v1/auth/../../health` reaching `/health`), or
 * lands on a route with a dot segment as a parameter. Neither may reach a handler: one is refused
 * by the catch-all below, the other by `hasDotSegment` in the HTTP plugin. Both answer 404, as for
 * any path that names no route.
 */

const refused = new WeakSet<Request>();

/** True when the catch-all refused this request; the HTTP plugin answers it with a 404. */
export const isRefusedPath = (request: Request): boolean => refused.has(request);

const NATIVE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "DELETE", "PATCH", "POST", "PUT", "ALL"]);

/** A route path as a pattern of the resolved request path (`:id` one segment, optional trailing slash). */
export function routePattern(path: string): RegExp {
  const segments = withoutTrailingSlash(encodeURI(path))
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${segments.join("/")}/?$`);
}

/**
 * The routes Bun's router serves for `app`, as Elysia registers them (no WebSocket or wildcard
 * routes, trailing slash removed); a request that reaches the catch-all with one of these paths
 * and methods was spelled differently on the wire. With another method it is simply the wrong
 * method, which the HTTP plugin answers with 405.
 */
function nativePatterns(app: AnyElysia): Array<{ method: string; pattern: RegExp }> {
  const routes = app.routes as Array<{ method: string; path: string }>;
  const websockets = new Set(routes.filter((route) => route.method === "WS").map((route) => route.path));
  return routes
    .filter((route) => NATIVE_METHODS.has(route.method) && !route.path.endsWith("*"))
    .filter((route) => !(route.method === "GET" && websockets.has(route.path)))
    .map((route) => ({ method: route.method, pattern: routePattern(route.path) }));
}

/** HEAD is served by GET routes. */
const sameMethod = (route: string, request: string) =>
  route === "ALL" || route === request || (route === "GET" && request === "HEAD");

const withoutTrailingSlash = (path: string) => (path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path);

/**
 * Bun `routes` entry for `/*`: takes every request Bun's own routes did not match. One whose
 * resolved path is a route's path is refused; the rest (WebSocket upgrades, paths no route
 * serves) go to Elysia as before. A resolved path may end in a slash (`/a/x/../me/`), so a
 * route's path with a trailing slash is refused too, unless the route was declared with it
 * (`POST /api/v1/chat/`, which Bun's table holds without it and so reaches only this way).
 */
export function catchAllRoute(getApp: () => AnyElysia) {
  let patterns: Array<{ method: string; pattern: RegExp }> | undefined;
  let declared: Set<string> | undefined;
  return (request: Request) => {
    const app = getApp();
    patterns ??= nativePatterns(app);
    declared ??= new Set(
      (app.routes as Array<{ method: string; path: string }>)
        .filter((route) => route.path.length > 1 && route.path.endsWith("/"))
        .map((route) => `${route.method} ${encodeURI(route.path)}`),
    );
    const path = new URL(request.url).pathname;
    const native = patterns.some(({ method, pattern }) => sameMethod(method, request.method) && pattern.test(path));
    if (!declared.has(`${request.method} ${path}`) && native) {
      refused.add(request);
    }
    return app.fetch(request);
  };
}

/** True when a route parameter holds a `.` or `..` segment (`/configs/%2e%2e` matched `/configs/:id`). */
export function hasDotSegment(params: Record<string, string | undefined> | undefined): boolean {
  if (!params) return false;
  for (const value of Object.values(params)) {
    if (typeof value !== "string" || !(value.includes(".") || value.includes("%"))) continue;
    if (isDotted(value) || isDotted(safeDecode(value))) return true;
  }
  return false;
}

const isDotted = (value: string) => value.split(/[/\\]/).some((segment) => segment === "." || segment === "..");

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
