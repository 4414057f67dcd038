// Strategy: the service reaches PostgreSQL and Redis through TCP proxies the test controls, so
// "the server went down" is simulated for this service alone without stopping the shared servers.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestContext, eventually, TcpProxy, type TestContext, viaProxy } from "../../src/shared/testing";

let ctx: TestContext;
let base: string;
const pgProxy = new TcpProxy("127.0.0.1", 5432);
const redisProxy = new TcpProxy("127.0.0.1", 6379);

beforeAll(async () => {
  ctx = await createTestContext();
  const pgUrl = new URL(ctx.databaseUrl);
  pgProxy.start();
  redisProxy.start();
  const server = await ctx.start([], {
    env: {
      DATABASE_URL: viaProxy(pgUrl.toString(), pgProxy.port),
      REDIS_URL: viaProxy(ctx.redisUrl, redisProxy.port),
    },
  });
  base = server.url;
});
afterAll(async () => {
  await ctx.close();
  pgProxy.stop();
  redisProxy.stop();
});

const readiness = async () => {
  const response = await fetch(`${base}/ready`);
  return { status: response.status, body: await response.json() };
};

test("ready while both are up", async () => {
  expect(await eventually(readiness, (r) => r.status === 200)).toEqual({
    status: 200,
    body: { status: "ready", checks: { database: "ok", redis: "ok" } },
  });
});

test("503 while Redis is down, 200 again when it returns, no restart", async () => {
  redisProxy.cut();
  const down = await eventually(readiness, (r) => r.status === 503);
  expect(down).toEqual({ status: 503, body: { status: "unavailable", checks: { database: "ok", redis: "down" } } });
  expect((await fetch(`${base}/health`)).status).toBe(200);
  redisProxy.resume();
  const up = await eventually(readiness, (r) => r.status === 200);
  expect(up.status).toBe(200);
});

test("503 while PostgreSQL is down, 200 again when it returns", async () => {
  pgProxy.cut();
  const down = await eventually(readiness, (r) => r.status === 503);
  expect(down).toEqual({ status: 503, body: { status: "unavailable", checks: { database: "down", redis: "ok" } } });
  pgProxy.resume();
  const up = await eventually(readiness, (r) => r.status === 200);
  expect(up.status).toBe(200);
});
