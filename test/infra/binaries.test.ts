// Strategy: real processes only. The four compiled executables (dist/ when `bun run build` produced
// them after the last source change, else a fresh build in a temp dir) run as in production against
// a fresh PostgreSQL database, the shared Redis under a unique key prefix, and key files from
// testKeys(); `bun src/main.ts` runs for configuration errors and embedded mode; a fixture service
// with a slow route runs through the same entry for graceful shutdown. Ports come from the
// "listening" log line (PORT=0).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { requiredInProduction, SERVICE_NAMES, type ServiceName } from "../../src/shared/env";
import {
  createTestDatabase,
  deleteKeysWithPrefix,
  eventually,
  randomSuffix,
  TEST_REDIS_URL,
  testKeys,
} from "../../src/shared/testing";
import { accepts, isolatedEnv, ServiceProcess } from "./service-process";

const temp = mkdtempSync(`${tmpdir()}/adiuva-binaries-`);
const keyPrefix = `t:${randomSuffix()}`;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let binDir: string;

/** dist/ is reusable when every executable is newer than every input of the build. */
function freshDist(): boolean {
  const inputs = [
    "package.json",
    "bun.lock",
    "scripts/build.ts",
    ...readdirSync("src", { recursive: true }).map((file) => `src/${file}`),
  ];
  const newestInput = Math.max(...inputs.map((file) => statSync(file).mtimeMs));
  return SERVICE_NAMES.every(
    (name) => existsSync(`dist/${name}-service`) && statSync(`dist/${name}-service`).mtimeMs > newestInput,
  );
}

beforeAll(async () => {
  database = await createTestDatabase();
  binDir = "dist";
  if (!freshDist()) {
    binDir = `${temp}/dist`;
    const build = Bun.spawnSync(["bun", "scripts/build.ts", `--outdir=${binDir}`], { stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  }
}, 120_000);
afterAll(async () => {
  await database.drop();
  await deleteKeysWithPrefix(keyPrefix);
  rmSync(temp, { recursive: true, force: true });
});

/** What Compose gives a service: production mode and every variable env.ts requires there. */
async function productionEnv(name: ServiceName): Promise<Record<string, string>> {
  const keys = await testKeys();
  const values: Record<string, string> = {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
    MASTER_KEY_FILE: keys.masterKeyFile,
    // Nothing listens there: start-up must not depend on reaching the LLM or Stripe.
    LLM_BASE_URL: "http://127.0.0.1:9/v1",
    STRIPE_SECRET_KEY: "sk_test_unused",
    STRIPE_WEBHOOK_SECRET: "whsec_unused",
  };
  const missing = requiredInProduction[name].filter((key) => !(key in values));
  if (missing.length > 0) throw new Error(`give ${missing.join(", ")} a test value in binaries.test.ts`);
  return isolatedEnv({
    ...Object.fromEntries(requiredInProduction[name].map((key) => [key, values[key]])),
    NODE_ENV: "production",
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    REDIS_KEY_PREFIX: keyPrefix,
  });
}

const getJson = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

const DOCS_PATHS: Record<ServiceName, string> = {
  auth: "/api/v1/auth/docs",
  chat: "/api/v1/chat/docs",
  agent: "/api/v1/agents/docs",
  billing: "/api/v1/billing/docs",
};
const SCALAR_BUNDLE = "node_modules/@scalar/api-reference/dist/browser/standalone.js";

describe("compiled executables", () => {
  for (const name of SERVICE_NAMES) {
    test(`${name}-service serves /health, /ready, its docs, /metrics on its own port, passes its healthcheck, exits 0 on SIGTERM`, async () => {
      const env = await productionEnv(name);
      await using service = new ServiceProcess([`${binDir}/${name}-service`], env);
      const port = await service.port();
      const base = `http://127.0.0.1:${port}`;
      expect(await getJson(`${base}/health`)).toMatchObject({ status: 200, body: { status: "ok", service: name } });
      // Redis connects in the background: ready follows within moments.
      expect(
        await eventually(
          () => getJson(`${base}/ready`),
          (ready) => ready.status === 200,
        ),
      ).toEqual({
        status: 200,
        body: { status: "ready", checks: { database: "ok", redis: "ok" } },
      });
      const metricsPort = await service.metricsPort();
      expect(metricsPort).not.toBe(port);
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain(`http_requests_total{service="${name}"`);
      expect((await fetch(`${base}/metrics`)).status).toBe(404);
      // The docs page's script travels inside the executable, not in a node_modules beside it.
      const docs = `${base}${DOCS_PATHS[name]}`;
      expect((await fetch(`${docs}/json`)).status).toBe(200);
      const script = await fetch(`${docs}/scalar.js`);
      expect(script.status).toBe(200);
      expect((await script.arrayBuffer()).byteLength).toBe(Bun.file(SCALAR_BUNDLE).size);

      const probe = (probePort: number) =>
        Bun.spawnSync([`${binDir}/${name}-service`, "healthcheck"], { env: isolatedEnv({ PORT: String(probePort) }) })
          .exitCode;
      expect(probe(port)).toBe(0);

      service.signal("SIGTERM");
      expect(await service.exited(5000)).toBe(0);
      expect(probe(port)).toBe(1);
      expect(await accepts(metricsPort)).toBe(false);
    }, 30_000);
  }
});

describe("bun src/main.ts", () => {
  const configFailure = (variables: Record<string, string | undefined>) => {
    const result = Bun.spawnSync(["bun", "src/main.ts"], {
      env: isolatedEnv({ LOG_LEVEL: "silent", ...variables }),
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: result.exitCode, stderr: result.stderr.toString().trim().split("\n") };
  };

  test("a missing or unknown SERVICE_NAME exits 1 with one line naming it", () => {
    for (const variables of [{}, { SERVICE_NAME: "payments" }]) {
      const { code, stderr } = configFailure(variables);
      expect({ code, lines: stderr.length }).toEqual({ code: 1, lines: 1 });
      expect(stderr[0]).toStartWith("invalid configuration: SERVICE_NAME");
    }
  });

  test("an invalid or missing production variable exits 1 with one line naming it", () => {
    const port = configFailure({ SERVICE_NAME: "auth", PORT: "eighty" });
    expect(port).toEqual({ code: 1, stderr: [expect.stringMatching(/^invalid configuration: PORT: /)] });
    const stripe = configFailure({ SERVICE_NAME: "billing", NODE_ENV: "production" });
    expect(stripe.code).toBe(1);
    expect(stripe.stderr).toEqual([expect.stringContaining("STRIPE_SECRET_KEY")]);
  });

  test("a METRICS_PORT that is no port, or is PORT, exits 1 with one line naming it", () => {
    expect(configFailure({ SERVICE_NAME: "auth", METRICS_PORT: "metrics" })).toEqual({
      code: 1,
      stderr: [expect.stringMatching(/^invalid configuration: METRICS_PORT: /)],
    });
    expect(configFailure({ SERVICE_NAME: "auth", PORT: "8123", METRICS_PORT: "8123" })).toEqual({
      code: 1,
      stderr: ["invalid configuration: METRICS_PORT must differ from PORT"],
    });
  });

  test("SERVICE_NAME=all with no DATABASE_URL or REDIS_URL runs embedded and exits cleanly", async () => {
    await using service = new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({ SERVICE_NAME: "all", PORT: "0", HOST: "127.0.0.1", DATA_DIR: `${temp}/embedded` }),
    );
    const base = `http://127.0.0.1:${await service.port()}`;
    expect(await getJson(`${base}/health`)).toMatchObject({ status: 200, body: { status: "ok", service: "all" } });
    expect(await getJson(`${base}/ready`)).toEqual({
      status: 200,
      body: { status: "ready", checks: { database: "ok", redis: "embedded" } },
    });
    expect(existsSync(`${temp}/embedded/pglite`)).toBe(true);
    service.signal("SIGTERM");
    expect(await service.exited(5000)).toBe(0);
  }, 30_000);
});

describe("graceful shutdown", () => {
  const startSlow = async (graceMs: number, extra: Record<string, string> = {}) => {
    const keys = await testKeys();
    const service = new ServiceProcess(
      ["bun", "test/fixtures/slow-service.ts"],
      isolatedEnv({
        SERVICE_NAME: "auth",
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: keyPrefix,
        JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
        JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
        MASTER_KEY_FILE: keys.masterKeyFile,
        SHUTDOWN_GRACE_MS: String(graceMs),
        ...extra,
      }),
    );
    return { service, port: await service.port() };
  };

  test("SIGTERM: the in-flight request completes, new connections are refused, exit 0", async () => {
    const { service, port } = await startSlow(5000);
    await using _ = service;
    const inFlight = fetch(`http://127.0.0.1:${port}/api/v1/slow?ms=1500`);
    await service.waitForLog((line) => line.msg === "slow request started");
    service.signal("SIGTERM");
    await service.waitForLog((line) => line.msg === "shutting down");
    expect(
      await eventually(
        () => accepts(port),
        (open) => !open,
      ),
    ).toBe(false);
    const response = await inFlight;
    expect({ status: response.status, body: await response.json() }).toEqual({ status: 200, body: { done: true } });
    expect(await service.exited(5000)).toBe(0);
  }, 30_000);

  test("SIGTERM with a drain delay: /ready turns 503 at once and the port stays open, then closes; in-flight requests finish", async () => {
    const { service, port } = await startSlow(5000, { SHUTDOWN_DRAIN_DELAY_MS: "1500" });
    await using _ = service;
    const base = `http://127.0.0.1:${port}`;
    // A fresh connection each time, as a load balancer's health check opens them.
    const probe = async (path: string) => {
      const response = await fetch(`${base}${path}`, { keepalive: false });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect(await probe("/ready?scope=instance")).toEqual({ status: 200, body: { status: "ready" } });
    const inFlight = fetch(`${base}/api/v1/slow?ms=2500`);
    await service.waitForLog((line) => line.msg === "slow request started");
    service.signal("SIGTERM");
    await service.waitForLog((line) => line.msg === "shutting down");
    expect(await probe("/ready?scope=instance")).toEqual({ status: 503, body: { status: "draining" } });
    expect(await probe("/ready")).toMatchObject({ status: 503, body: { status: "draining" } });
    expect((await probe("/health")).status).toBe(200);
    // A request reaching it in the meantime (one the balancer sent before its next check) is served.
    expect(await probe("/api/v1/slow?ms=0")).toEqual({ status: 200, body: { done: true } });
    expect(
      await eventually(
        () => accepts(port),
        (open) => !open,
      ),
    ).toBe(false);
    const response = await inFlight;
    expect({ status: response.status, body: await response.json() }).toEqual({ status: 200, body: { done: true } });
    expect(await service.exited(5000)).toBe(0);
  }, 30_000);

  test("a request outliving the grace period is cut and the process still exits", async () => {
    const { service, port } = await startSlow(300);
    await using _ = service;
    const inFlight = fetch(`http://127.0.0.1:${port}/api/v1/slow?ms=20000`).then(
      (response) => response.status,
      () => "cut",
    );
    await service.waitForLog((line) => line.msg === "slow request started");
    service.signal("SIGTERM");
    expect(await service.exited(5000)).toBe(0);
    expect(await inFlight).toBe("cut");
    expect(service.logs.map((line) => line.msg)).toContain("in-flight requests did not finish in time; closing them");
  }, 30_000);
});
