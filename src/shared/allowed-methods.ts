import type { AnyElysia } from "elysia";
import { routePattern } from "./path-guard";

const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);

/**
 * For a request path no route serves with its method: the methods that do serve it (empty when
 * the path itself is unknown), for a 405 with `Allow`. WebSocket routes are not HTTP methods and
 * are left out. Built on first use, once every service's routes are in.
 */
export function allowedMethods(getApp: () => AnyElysia): (path: string) => string[] {
  let routes: Array<{ method: string; pattern: RegExp }> | undefined;
  return (path) => {
    routes ??= (getApp().routes as Array<{ method: string; path: string }>)
      .filter((route) => HTTP_METHODS.has(route.method))
      .map((route) => ({ method: route.method, pattern: routePattern(route.path) }));
    const methods = new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}
