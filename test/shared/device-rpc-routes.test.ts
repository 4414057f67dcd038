// The device RPC's route memory on its own: when a route expires, one call looks it up again while
// the calls behind it keep the old route, for at most one more lifetime.
import { describe, expect, test } from "bun:test";
import { RouteCache } from "../../src/shared/device-rpc/routes";

const TTL = 100;

describe("RouteCache", () => {
  test("a fresh route is reused by every call", () => {
    const routes = new RouteCache(TTL);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    expect(routes.get("u", undefined, 50)?.connectionId).toBe("conn-1");
    expect(routes.get("u", undefined, 99)?.connectionId).toBe("conn-1");
    expect(routes.get("u", "other-device", 50)).toBeUndefined();
  });

  test("once expired, the first call looks it up again and the others keep the route meanwhile", () => {
    const routes = new RouteCache(TTL);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    expect(routes.get("u", undefined, 120)).toBeUndefined();
    expect(routes.get("u", undefined, 121)?.connectionId).toBe("conn-1");
    expect(routes.get("u", undefined, 150)?.connectionId).toBe("conn-1");
    routes.remember("u", undefined, "conn-2", "inst-2", 160);
    expect(routes.get("u", undefined, 161)?.connectionId).toBe("conn-2");
  });

  test("an expired route is never used past one more lifetime, even while nobody refreshed it", () => {
    const routes = new RouteCache(TTL);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    expect(routes.get("u", undefined, 120)).toBeUndefined();
    expect(routes.get("u", undefined, 199)?.connectionId).toBe("conn-1");
    expect(routes.get("u", undefined, 200)).toBeUndefined();
    expect(routes.get("u", undefined, 201)).toBeUndefined();
    expect(routes.size).toBe(0);
  });

  test("forgetting drops a kept route at once; forgetting a replaced one keeps its successor", () => {
    const routes = new RouteCache(TTL);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    const old = routes.get("u", undefined, 10)!;
    routes.remember("u", undefined, "conn-2", "inst-2", 20);
    routes.forget("u", undefined, old);
    expect(routes.get("u", undefined, 30)?.connectionId).toBe("conn-2");
    expect(routes.get("u", undefined, 130)).toBeUndefined();
    routes.forget("u", undefined);
    expect(routes.get("u", undefined, 131)).toBeUndefined();
  });

  test("the sweep keeps a route while it may still be used and drops it after", () => {
    const routes = new RouteCache(TTL);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    routes.remember("v", "laptop", "conn-9", "inst-1", 0);
    routes.sweep(150);
    expect(routes.size).toBe(2);
    routes.sweep(200);
    expect(routes.size).toBe(0);
  });

  test("a lifetime of 0 remembers nothing", () => {
    const routes = new RouteCache(0);
    routes.remember("u", undefined, "conn-1", "inst-1", 0);
    expect(routes.get("u", undefined, 0)).toBeUndefined();
  });
});
