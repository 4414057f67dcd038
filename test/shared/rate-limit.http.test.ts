// The per-tier HTTP limit across two real service instances sharing one Redis, and the policy
// while Redis is unreachable: a third instance reaches Redis through a TCP proxy the test cuts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import type { ServiceModule } from "../../src/shared/app";
import { authGuard } from "../../src/shared/auth/guard";
import type { Platform } from "../../src/shared/platform";
import { rateLimitByTier } from "../../src/shared/rate-limit";
import { createTestContext, eventually, TcpProxy, type TestContext, viaProxy } from "../../src/shared/testing";

const HOUR = 3_600_000;

/** A probe service: guard, then the limiter with the tiers table, or 50/hour on /fifty. */
const probe =
  (service = "probe") =>
  async (platform: Platform): Promise<ServiceModule> => ({
    name: service,
    prefix: "/api/v1/probe",
    plugin: new Elysia({ prefix: "/api/v1/probe" })
      .use(
        new Elysia()
          .use(authGuard(platform.verifier))
          .use(rateLimitByTier(platform, "fifty", { rule: () => ({ limit: 50, windowMs: HOUR }) }))
          .get("/fifty", () => "ok"),
      )
      .use(
        new Elysia()
          .use(authGuard(platform.verifier))
          .use(rateLimitByTier(platform, service))
          .get("/", () => "ok"),
      ),
  });

let ctx: TestContext;
const bases: string[] = [];
let degradedBase: string;
const redisProxy = new TcpProxy("127.0.0.1", 6379);

beforeAll(async () => {
  ctx = await createTestContext();
  for (const instanceId of ["a", "b"]) bases.push((await ctx.start([probe()], { instanceId })).url);
  redisProxy.start();
  const degraded = await ctx.start([probe()], { env: { REDIS_URL: viaProxy(ctx.redisUrl, redisProxy.port) } });
  degradedBase = degraded.url;
});
afterAll(async () => {
  await ctx.close();
  redisProxy.stop();
});

const get = (base: string, path: string, token?: string) =>
  fetch(`${base}/api/v1/probe${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

describe("per-tier rate limit over HTTP", () => {
  test("100 concurrent requests against a limit of 50 admit exactly 50 across two instances", async () => {
    const token = await ctx.token(crypto.randomUUID(), "free");
    const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => get(bases[i % 2]!, "/fifty", token)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200).length).toBe(50);
    expect(statuses.filter((status) => status === 429).length).toBe(50);
    const denied = responses.find((response) => response.status === 429)!;
    expect(Number(denied.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
  });

  test("the free tier gets 20/min with IETF headers, then 429 with Retry-After", async () => {
    const token = await ctx.token(crypto.randomUUID(), "free");
    const first = await get(bases[0]!, "/", token);
    expect(first.status).toBe(200);
    expect({
      policy: first.headers.get("ratelimit-policy"),
      state: first.headers.get("ratelimit"),
    }).toEqual({ policy: '"probe";q=20;w=60', state: '"probe";r=19;t=3' });
    for (let i = 0; i < 19; i++) expect((await get(bases[i % 2]!, "/", token)).status).toBe(200);
    const denied = await get(bases[1]!, "/", token);
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toBe("3");
    expect(denied.headers.get("ratelimit")).toBe('"probe";r=0;t=3');
  });

  test("a higher tier has a higher limit; users and services have separate budgets", async () => {
    const team = await ctx.token(crypto.randomUUID(), "team");
    expect((await get(bases[0]!, "/", team)).headers.get("ratelimit-policy")).toBe('"probe";q=200;w=60');
    const other = await ctx.token(crypto.randomUUID(), "free");
    expect((await get(bases[0]!, "/", other)).headers.get("ratelimit")).toBe('"probe";r=19;t=3');
  });

  test("no token is 401 before any limit is taken", async () => {
    expect((await get(bases[0]!, "/")).status).toBe(401);
  });
});

describe("while Redis is unreachable", () => {
  test("each instance keeps enforcing the limit alone, and returns to the shared limit afterwards", async () => {
    const token = await ctx.token(crypto.randomUUID(), "free");
    expect((await get(degradedBase, "/", token)).headers.get("ratelimit")).toBe('"probe";r=19;t=3');
    redisProxy.cut();
    const started = performance.now();
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await get(degradedBase, "/", token)).status);
    // Redis never answers, yet no request fails and none waits for it: checks are local.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(statuses.slice(0, 20)).toEqual(Array(20).fill(200));
    expect(statuses[20]).toBe(429);
    redisProxy.resume();
    // Back on the shared budget, where this user had spent one request.
    const shared = await eventually(
      async () => (await get(degradedBase, "/", token)).headers.get("ratelimit"),
      (state) => state === '"probe";r=17;t=9' || state === '"probe";r=18;t=6',
    );
    expect(shared).toMatch(/^"probe";r=1(7;t=9|8;t=6)$/);
  });
});
