// Strategy: real processes (`bun src/main.ts`, service-process.ts) reaching PostgreSQL and Redis
// through TCP proxies this test controls. A proxy cut before the process starts is a dependency
// down at start; resuming it brings the dependency up, and the same process must become ready and
// serve without a restart, both as `bun src/main.ts` and as the compiled executables (dist/ when
// fresh, else built into a temp dir). A fresh database per file, a unique Redis key prefix.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { ServiceName } from "../../src/shared/env";
import {
  createTestDatabase,
  deleteKeysWithPrefix,
  eventually,
  randomSuffix,
  signTestToken,
  TcpProxy,
  TEST_REDIS_URL,
  testKeys,
  viaProxy,
} from "../../src/shared/testing";
import { freshDist, isolatedEnv, ServiceProcess } from "./service-process";

const keyPrefix = `t:${randomSuffix()}`;
const temp = mkdtempSync(`${tmpdir()}/adiuva-dependency-down-`);
let database: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
  await deleteKeysWithPrefix(keyPrefix);
  rmSync(temp, { recursive: true, force: true });
});

/** One request per service that needs its migrations and its dependencies, and what it answers when served. */
const realRequest: Record<ServiceName, { request: (base: string) => Promise<Response>; status: number }> = {
  auth: {
    request: (base) =>
      fetch(`${base}/api/v1/auth/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: `late-${randomSuffix()}@example.com`, password: "correct horse battery staple" }),
      }),
    status: 201,
  },
  chat: { request: (base) => authorized(`${base}/api/v1/chat/conversations`), status: 200 },
  agent: { request: (base) => authorized(`${base}/api/v1/agents/configs`), status: 200 },
  billing: { request: (base) => authorized(`${base}/api/v1/billing/subscription`), status: 200 },
  storage: { request: (base) => authorized(`${base}/api/v1/storage/objects`), status: 200 },
  plugins: { request: (base) => authorized(`${base}/api/v1/plugins/installs`), status: 200 },
};

async function authorized(url: string): Promise<Response> {
  const token = await signTestToken(crypto.randomUUID(), "free");
  return fetch(url, { headers: { authorization: `Bearer ${token}` } });
}

const readiness = async (base: string) => {
  const response = await fetch(`${base}/ready`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

const TARGETS = {
  database: () => new URL(database.url),
  redis: () => new URL(TEST_REDIS_URL),
};

type Dependency = keyof typeof TARGETS;

/** A service process whose `dependency` sits behind a proxy that refuses every connection. */
async function startWithDown(service: ServiceName | "all", dependency: Dependency, command: string[]) {
  const target = TARGETS[dependency]();
  const proxy = new TcpProxy(target.hostname, Number(target.port || (dependency === "database" ? 5432 : 6379)));
  proxy.start();
  proxy.cut();
  const keys = await testKeys();
  const child = new ServiceProcess(
    command,
    isolatedEnv({
      SERVICE_NAME: service,
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: dependency === "database" ? viaProxy(database.url, proxy.port) : database.url,
      REDIS_URL: dependency === "redis" ? viaProxy(TEST_REDIS_URL, proxy.port) : TEST_REDIS_URL,
      REDIS_KEY_PREFIX: keyPrefix,
      JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      MASTER_KEY_FILE: keys.masterKeyFile,
    }),
  );
  return { proxy, child, target: `127.0.0.1:${proxy.port}` };
}

/** The whole story for one service (`all`: asked as chat) and one dependency, as `command` runs it. */
async function waitsThenServes(name: ServiceName | "all", dependency: Dependency, command: string[]) {
  const service = name === "all" ? "chat" : name;
  const { proxy, child, target } = await startWithDown(name, dependency, command);
  await using _ = child;
  try {
    const base = `http://127.0.0.1:${await child.startingPort()}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const waiting = await eventually(
      () => readiness(base),
      // The other one may still be connecting for a moment.
      (r) => JSON.stringify(r.body.waiting_for) === JSON.stringify([dependency]),
    );
    const up = dependency === "database" ? "redis" : "database";
    expect(waiting).toEqual({
      status: 503,
      body: { status: "starting", checks: { [dependency]: "down", [up]: "ok" }, waiting_for: [dependency] },
    });
    const early = await realRequest[service].request(base);
    expect({ status: early.status, retryAfter: early.headers.get("retry-after"), body: await early.json() }).toEqual({
      status: 503,
      retryAfter: "2",
      body: {
        error: {
          code: "starting",
          message: "the service is starting, try again shortly",
          request_id: expect.any(String),
        },
      },
    });
    // Named by dependency and address, the URL's credentials nowhere.
    const warning = await child.waitForLog((line) => line.msg === "waiting for a dependency");
    expect(warning).toMatchObject({ level: "warn", dependency, target });

    proxy.resume();
    const ready = await eventually(
      () => readiness(base),
      (r) => r.status === 200,
      10_000,
    );
    expect(ready).toMatchObject({ status: 200, body: { status: "ready" } });
    const served = await realRequest[service].request(base);
    expect(served.status).toBe(realRequest[service].status);
  } finally {
    proxy.stop();
  }
}

describe("a dependency down at start: the process listens, says what it waits for, and serves once it answers", () => {
  for (const service of ["auth", "chat", "agent", "billing", "plugins"] as const) {
    for (const dependency of ["database", "redis"] as const) {
      test(`${service} with ${dependency === "database" ? "PostgreSQL" : "Redis"} down`, async () => {
        await waitsThenServes(service, dependency, ["bun", "src/main.ts"]);
      }, 30_000);
    }
  }

  test("all with PostgreSQL down", async () => {
    await waitsThenServes("all", "database", ["bun", "src/main.ts"]);
  }, 30_000);
});

describe("the compiled executables follow the same policy", () => {
  let binDir: string;
  beforeAll(() => {
    binDir = "dist";
    if (!freshDist()) {
      binDir = `${temp}/dist`;
      const build = Bun.spawnSync(["bun", "scripts/build.ts", `--outdir=${binDir}`], {
        stdout: "pipe",
        stderr: "pipe",
      });
      if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
    }
  }, 120_000);

  test("chat-service with PostgreSQL down", async () => {
    await waitsThenServes("chat", "database", [`${binDir}/chat-service`]);
  }, 30_000);

  test("auth-service with Redis down", async () => {
    await waitsThenServes("auth", "redis", [`${binDir}/auth-service`]);
  }, 30_000);
});
