// Strategy: real processes only. The compiled executables (dist/ when `bun run build` produced
// them after the last source change, else a fresh build in a temp dir) run as in production against
// a fresh PostgreSQL database, the shared Redis under a unique key prefix, and key files from
// testKeys(); `bun src/main.ts` runs for configuration errors and embedded mode; a fixture service
// with a slow route runs through the same entry for graceful shutdown. Ports come from the
// "listening" log line (PORT=0).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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
import { accepts, freshDist, isolatedEnv, ServiceProcess } from "./service-process";

const temp = mkdtempSync(`${tmpdir()}/adiuva-binaries-`);
const keyPrefix = `t:${randomSuffix()}`;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let binDir: string;

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
    PLUGIN_PSEUDONYM_KEY_FILE: keys.pluginPseudonymKeyFile,
    // Nothing listens there: start-up must not depend on reaching the LLM or Stripe.
    LLM_BASE_URL: "http://127.0.0.1:9/v1",
    STRIPE_SECRET_KEY: "sk_test_unused",
    STRIPE_WEBHOOK_SECRET: "whsec_unused",
    // Nothing listens there either: mails wait in the outbox, start-up does not.
    SMTP_URL: "smtp://127.0.0.1:9",
    MAIL_FROM: "Adiuva <no-reply@example.com>",
    // Nothing listens there either: storage starts without reaching its bucket.
    S3_ENDPOINT: "http://127.0.0.1:9",
    S3_BUCKET: "adiuva-test",
    S3_ACCESS_KEY_ID: "unused",
    S3_SECRET_ACCESS_KEY: "unused",
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
    DOCS_PUBLIC: "true",
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
  storage: "/api/v1/storage/docs",
  plugins: "/api/v1/plugins/docs",
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
  /**
   * Exit code and the messages of what the process printed: a start failure is one `fatal` JSON line
   * on stdout (whatever LOG_LEVEL says), nothing on stderr, no stack.
   */
  const configFailure = (variables: Record<string, string | undefined>) => {
    const result = Bun.spawnSync(["bun", "src/main.ts"], {
      env: isolatedEnv({ LOG_LEVEL: "silent", ...variables }),
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(result.stderr.toString()).toBe("");
    const lines = result.stdout.toString().trim().split("\n");
    const stderr = lines.map((line) => {
      const entry = JSON.parse(line) as { level: string; msg: string };
      return entry.level === "fatal" ? entry.msg : line;
    });
    return { code: result.exitCode, stderr };
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

describe("one service per executable", () => {
  // Each service's first migration creates its schema: a string only that service's code holds.
  const markers = Object.fromEntries(SERVICE_NAMES.map((name) => [name, `CREATE SCHEMA "${name}"`])) as Record<
    ServiceName,
    string
  >;

  test("the markers are in the sources, once per service", () => {
    for (const name of SERVICE_NAMES) {
      const files = readdirSync(`src/${name}/migrations`).filter((file) => file.endsWith(".sql"));
      const sql = files.map((file) => readFileSync(`src/${name}/migrations/${file}`, "utf8")).join("\n");
      expect({ name, found: sql.includes(markers[name]) }).toEqual({ name, found: true });
    }
  });

  for (const name of SERVICE_NAMES) {
    test(`${name}-service holds ${name}'s code and no other service's`, async () => {
      const bytes = Buffer.from(await Bun.file(`${binDir}/${name}-service`).arrayBuffer());
      const holds = Object.fromEntries(SERVICE_NAMES.map((other) => [other, bytes.includes(markers[other])]));
      expect(holds).toEqual(Object.fromEntries(SERVICE_NAMES.map((other) => [other, other === name])));
    });

    test(`${name}-service refuses another SERVICE_NAME with one line and exit 1`, () => {
      const other = SERVICE_NAMES.find((each) => each !== name) as ServiceName;
      for (const requested of [other, "all"]) {
        const result = Bun.spawnSync([`${binDir}/${name}-service`], {
          env: isolatedEnv({ SERVICE_NAME: requested, PORT: "0", HOST: "127.0.0.1" }),
          stdout: "pipe",
          stderr: "pipe",
        });
        expect({ code: result.exitCode, stderr: result.stderr.toString().trim().split("\n") }).toEqual({
          code: 1,
          stderr: [`invalid configuration: SERVICE_NAME: this executable runs ${name} only (got '${requested}')`],
        });
      }
    });
  }

  test("the Dockerfile declares SERVICE after the install and the copies, so the images share them", () => {
    const lines = readFileSync("Dockerfile", "utf8").split("\n");
    const stages = lines.flatMap((line, index) => (line.startsWith("FROM ") ? [index] : []));
    const build = lines.slice(stages[0], stages[1]);
    const at = (pattern: RegExp) => build.findIndex((line) => pattern.test(line));
    expect(at(/^FROM oven\/bun:/)).toBeGreaterThanOrEqual(0);
    expect(at(/^ARG SERVICE$/)).toBeGreaterThan(at(/^RUN bun install --frozen-lockfile$/));
    expect(at(/^ARG SERVICE$/)).toBeGreaterThan(at(/^COPY src \.\/src$/));
    expect(at(/^RUN bun scripts\/build\.ts "\$SERVICE"$/)).toBeGreaterThan(at(/^ARG SERVICE$/));
    // Every instruction parses: a known keyword, continuation lines aside.
    const keywords = /^(FROM|WORKDIR|COPY|RUN|ARG|ENV|LABEL|USER|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD)\b/;
    const instructions = lines.filter(
      (line, index) => line.trim() && !line.startsWith("#") && !lines[index - 1]?.endsWith("\\"),
    );
    expect(instructions.filter((line) => !keywords.test(line))).toEqual([]);
  });
});

describe("production defaults of the executables", () => {
  test("docs answer 404 unless DOCS_PUBLIC=true; probes are logged at debug, API requests at info", async () => {
    const env = await productionEnv("billing");
    delete env.DOCS_PUBLIC;
    await using service = new ServiceProcess([`${binDir}/billing-service`], env);
    const base = `http://127.0.0.1:${await service.port()}`;
    const statuses = await Promise.all(
      ["/api/v1/billing/docs", "/api/v1/billing/docs/json", "/api/v1/billing/docs/scalar.js"].map(
        async (path) => (await fetch(`${base}${path}`)).status,
      ),
    );
    expect(statuses).toEqual([404, 404, 404]);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/ready?scope=instance`)).status).toBe(200);
    await fetch(`http://127.0.0.1:${await service.metricsPort()}/metrics`);
    await service.waitForLog((line) => line.msg === "request" && line.path === "/api/v1/billing/docs/scalar.js");
    const logged = service.logs
      .filter((line) => line.msg === "request" || line.msg === "scrape")
      .map((line) => line.path);
    expect(logged).toEqual(["/api/v1/billing/docs", "/api/v1/billing/docs/json", "/api/v1/billing/docs/scalar.js"]);
  }, 30_000);
});

describe("the keys subcommand", () => {
  test("auth-service keys writes the files Compose mounts, never overwrites them, and auth starts with them", async () => {
    const dir = `${temp}/keys-subcommand`;
    const keys = (...args: string[]) =>
      Bun.spawnSync([`${binDir}/auth-service`, "keys", ...args], {
        env: isolatedEnv({}),
        stdout: "pipe",
        stderr: "pipe",
      });
    const first = keys(dir);
    expect({ code: first.exitCode, stderr: first.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const files = [
      "jwt_private.pem",
      "jwt_public.pem",
      "jwt_extra_public.pem",
      "master.key",
      "postgres_password",
      "plugin_pseudonym.key",
    ];
    expect(readdirSync(dir).sort()).toEqual([...files].sort());
    // Chat refuses a pseudonym key under 32 characters (PLUGIN_PSEUDONYM_KEY_FILE).
    expect(readFileSync(`${dir}/plugin_pseudonym.key`, "utf8").trim().length).toBeGreaterThanOrEqual(32);
    const before = files.map((file) => readFileSync(`${dir}/${file}`, "utf8"));
    expect(keys(dir).stdout.toString()).toStartWith(`keys already present in ${dir}`);
    expect(files.map((file) => readFileSync(`${dir}/${file}`, "utf8"))).toEqual(before);

    // As Compose runs auth: the key files of the secrets, the extra keys file included (empty).
    const env = await productionEnv("auth");
    await using service = new ServiceProcess([`${binDir}/auth-service`], {
      ...env,
      JWT_PRIVATE_KEY_FILE: `${dir}/jwt_private.pem`,
      JWT_PUBLIC_KEY_FILE: `${dir}/jwt_public.pem`,
      JWT_EXTRA_PUBLIC_KEY_FILES: `${dir}/jwt_extra_public.pem`,
      MASTER_KEY_FILE: `${dir}/master.key`,
    });
    const base = `http://127.0.0.1:${await service.port()}/api/v1/auth`;
    const register = await fetch(`${base}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `keys-${randomSuffix()}@example.com`, password: "correct horse battery staple" }),
    });
    expect(register.status).toBe(201);
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys.length).toBe(1);
  }, 30_000);
});
