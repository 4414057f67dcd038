/** Where a user's device (or most recent device) was last found: its connection on another instance. */
export interface Route {
  connectionId: string;
  instanceId: string;
  /** `performance.now()` after which the route is looked up again. */
  until: number;
  /** One call is asking presence for a fresh route: the others keep this one meanwhile. */
  refreshing?: boolean;
}

/**
 * A short-lived memory of where calls for a (user, device) went, so the next call can be a plain
 * PUBLISH to the owner's inbox instead of the presence script. It never decides that a device is
 * offline: a publish nobody receives, an owner answering "not delivered", a lease announced for the
 * user anywhere, or an owner found dead all drop the route and the call goes through the script.
 *
 * When a route expires, the next call looks it up again while the calls behind it keep the expired
 * route, for at most one more TTL: with many calls in flight, every call of a lookup's round trip
 * would otherwise go through the script (measured: an eighth of a busy caller's CPU). The checks
 * above still hold for those calls, so nothing is lost beyond that bounded staleness.
 */
export class RouteCache {
  private readonly users = new Map<string, Map<string, Route>>();

  constructor(private readonly ttlMs: number) {}

  get(userId: string, deviceId: string | undefined, now: number): Route | undefined {
    const routes = this.users.get(userId);
    const route = routes?.get(deviceId ?? "");
    if (!route || route.until > now) return route;
    if (route.until + this.ttlMs > now) {
      if (route.refreshing) return route;
      route.refreshing = true;
      return undefined;
    }
    this.forget(userId, deviceId, route);
    return undefined;
  }

  remember(userId: string, deviceId: string | undefined, connectionId: string, instanceId: string, now: number) {
    if (this.ttlMs <= 0) return;
    let routes = this.users.get(userId);
    if (!routes) {
      routes = new Map();
      this.users.set(userId, routes);
    }
    routes.set(deviceId ?? "", { connectionId, instanceId, until: now + this.ttlMs });
  }

  /** Drops the route, or only `route` when given (a newer one may have replaced it meanwhile). */
  forget(userId: string, deviceId: string | undefined, route?: Route): void {
    const routes = this.users.get(userId);
    if (!routes) return;
    const key = deviceId ?? "";
    if (route && routes.get(key) !== route) return;
    routes.delete(key);
    if (routes.size === 0) this.users.delete(userId);
  }

  /** A lease of the user changed somewhere: every route of the user may be stale. */
  forgetUser(userId: string): void {
    this.users.delete(userId);
  }

  forgetInstance(instanceId: string): void {
    for (const [userId, routes] of this.users) {
      for (const [key, route] of routes) if (route.instanceId === instanceId) routes.delete(key);
      if (routes.size === 0) this.users.delete(userId);
    }
  }

  /** Drops routes past their last use, so users no longer called do not stay in memory. */
  sweep(now: number): void {
    for (const [userId, routes] of this.users) {
      for (const [key, route] of routes) if (route.until + this.ttlMs <= now) routes.delete(key);
      if (routes.size === 0) this.users.delete(userId);
    }
  }

  get size(): number {
    let size = 0;
    for (const routes of this.users.values()) size += routes.size;
    return size;
  }
}
