// Strategy: real processes. `bun src/main.ts` runs with an isolated environment (service-process.ts)
// and its stdout is read as JSON lines; the database tests use a fresh PostgreSQL database and a
// role created here. Ports held by this test process stand in for "another server".
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import postgres from "postgres";
import {
  createTestDatabase,
  deleteKeysWithPrefix,
  eventually,
  randomSuffix,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  testKeys,
} from "../../src/shared/testing";
import { isolatedEnv, type LogLine, ServiceProcess } from "./service-process";

// No random letters in the path: the log redaction takes random-looking text for a secret.
const temp = `${tmpdir()}/adiuva-startup-${process.pid}`;
mkdirSync(temp, { recursive: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
  rmSync(temp, { recursive: true, force: true });
});

/** Runs `bun src/main.ts` to its exit; stdout as parsed lines (unparsable ones kept as text). */
function startFailure(variables: Record<string, string | undefined>) {
  const result = Bun.spawnSync(["bun", "src/main.ts"], {
    env: isolatedEnv({ HOST: "127.0.0.1", ...variables }),
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines = result.stdout
    .toString()
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line): LogLine | string => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        return line;
      }
    });
  return { code: result.exitCode, lines, stderr: result.stderr.toString() };
}

/** The one-line verdict every expected start failure must give. */
function expectOneLine(result: ReturnType<typeof startFailure>, message: string | RegExp) {
  expect({ code: result.code, stderr: result.stderr, count: result.lines.length }).toEqual({
    code: 1,
    stderr: "",
    count: 1,
  });
  const line = result.lines[0] as LogLine;
  expect(line).toMatchObject({
    level: "fatal",
    msg: typeof message === "string" ? message : expect.stringMatching(message),
  });
  expect(JSON.stringify(line)).not.toContain("    at ");
}

describe("a start that cannot succeed exits 1 with one JSON line naming the cause, no stack", () => {
  test("PORT in use by another process", async () => {
    using holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const result = startFailure({ SERVICE_NAME: "all", PORT: String(holder.port), DATA_DIR: `${temp}/port` });
    expectOneLine(result, `port ${holder.port} is in use`);
  });

  test("METRICS_PORT in use by another process", async () => {
    using holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const result = startFailure({
      SERVICE_NAME: "all",
      PORT: "0",
      METRICS_PORT: String(holder.port),
      DATA_DIR: `${temp}/metrics-port`,
    });
    expectOneLine(result, `metrics port ${holder.port} is in use`);
  });

  test("a second process on the port of a running service", async () => {
    await using first = new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({ SERVICE_NAME: "all", PORT: "0", HOST: "127.0.0.1", DATA_DIR: `${temp}/first` }),
    );
    const port = await first.port();
    const result = startFailure({ SERVICE_NAME: "all", PORT: String(port), DATA_DIR: `${temp}/second` });
    expectOneLine(result, `port ${port} is in use`);
  }, 30_000);

  test("a mysql:// DATABASE_URL", () => {
    const result = startFailure({ SERVICE_NAME: "auth", DATABASE_URL: "mysql://user:pw@127.0.0.1:3306/adiuva" });
    expectOneLine(result, "invalid configuration: DATABASE_URL: must be a postgres:// or postgresql:// URL");
  });

  test("a key file that does not exist", () => {
    const result = startFailure({
      SERVICE_NAME: "chat",
      JWT_PUBLIC_KEY_FILE: "/nope/pub.pem",
      DATA_DIR: `${temp}/key`,
    });
    expectOneLine(result, "invalid configuration: JWT_PUBLIC_KEY_FILE: no such file /nope/pub.pem");
  });

  test("a DATABASE_PASSWORD_FILE that does not exist", async () => {
    const keys = await testKeys();
    const result = startFailure({
      SERVICE_NAME: "chat",
      DATABASE_URL: database.url,
      DATABASE_PASSWORD_FILE: "/nope/password",
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    });
    expectOneLine(result, "invalid configuration: DATABASE_PASSWORD_FILE: no such file /nope/password");
  });

  test("PostgreSQL refusing the credentials", async () => {
    const keys = await testKeys();
    const url = new URL(database.url);
    url.username = `adiuva_nobody_${randomSuffix()}`;
    url.password = "wrong";
    const result = startFailure({
      SERVICE_NAME: "chat",
      PORT: "0",
      // Below error: the "starting" line and the Redis clients' own warnings; what is left is the verdict.
      LOG_LEVEL: "error",
      DATABASE_URL: url.toString(),
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    });
    expectOneLine(result, `PostgreSQL at ${url.hostname}:${url.port || 5432} refused the credentials`);
  });

  test("Redis refusing the credentials", async () => {
    const keys = await testKeys();
    const url = new URL(TEST_REDIS_URL);
    url.username = "nobody";
    url.password = "wrong";
    const result = startFailure({
      SERVICE_NAME: "chat",
      PORT: "0",
      LOG_LEVEL: "error",
      DATABASE_URL: database.url,
      REDIS_URL: url.toString(),
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    });
    expectOneLine(result, `Redis at ${url.hostname}:${url.port || 6379} refused the credentials`);
  });
});

describe("a dependency that is not there yet is waited for (dependency-down.test.ts: until it comes)", () => {
  test("PostgreSQL refusing connections (nobody listens on the port): listening, not ready, retrying", async () => {
    const keys = await testKeys();
    // A port just released: nothing listens there.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    await using service = new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({
        SERVICE_NAME: "chat",
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: `postgres://adiuva:secret-word@127.0.0.1:${port}/adiuva`,
        JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      }),
    );
    const base = `http://127.0.0.1:${await service.startingPort()}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect({ status: ready.status, body: await ready.json() }).toEqual({
      status: 503,
      body: { status: "starting", checks: { database: "down", redis: "embedded" }, waiting_for: ["database"] },
    });
    // One line per backoff step, each naming the database and where it is, never the password.
    await service.waitForLog((line) => line.msg === "waiting for a dependency" && line.attempt === 2);
    const warnings = service.logs.filter((line) => line.msg === "waiting for a dependency");
    expect(warnings.slice(0, 2)).toEqual(
      [1, 2].map((attempt) =>
        expect.objectContaining({
          level: "warn",
          dependency: "database",
          target: `127.0.0.1:${port}`,
          problem: `PostgreSQL at 127.0.0.1:${port} refused the connection`,
          attempt,
        }),
      ),
    );
    expect(JSON.stringify(service.logs)).not.toContain("secret-word");
    // Still waiting, not exited; SIGTERM ends the wait cleanly.
    expect(await service.exited(0)).toBe("timeout");
    service.signal("SIGTERM");
    expect(await service.exited(5000)).toBe(0);
  }, 30_000);
});

describe("the embedded database's directory is locked", () => {
  test("a second process on the same DATA_DIR exits 1 naming the directory and the holder; released at exit", async () => {
    const dataDir = `${temp}/locked`;
    const env = isolatedEnv({ SERVICE_NAME: "all", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir });
    const first = new ServiceProcess(["bun", "src/main.ts"], env);
    await using _ = first;
    await first.port();
    const holder = await Bun.file(`${dataDir}/pglite.lock`).text();
    const result = startFailure({ SERVICE_NAME: "all", PORT: "0", DATA_DIR: dataDir });
    expectOneLine(result, `data directory ${dataDir}/pglite is in use by process ${holder}`);
    first.signal("SIGTERM");
    expect(await first.exited(5000)).toBe(0);
    expect(existsSync(`${dataDir}/pglite.lock`)).toBe(false);
  }, 30_000);

  test("a lock left by a process that is gone is taken over", async () => {
    const dataDir = `${temp}/stale`;
    mkdirSync(dataDir, { recursive: true });
    const gone = Bun.spawnSync(["true"]).pid;
    writeFileSync(`${dataDir}/pglite.lock`, String(gone));
    await using service = new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({ SERVICE_NAME: "all", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir }),
    );
    await service.port();
    expect(await Bun.file(`${dataDir}/pglite.lock`).text()).not.toBe(String(gone));
  }, 30_000);
});

describe("development reads no .env", () => {
  test("a .env beside bunfig.toml with a bad value changes nothing", async () => {
    const dir = `${temp}/dotenv`;
    mkdirSync(dir, { recursive: true });
    cpSync("bunfig.toml", `${dir}/bunfig.toml`);
    writeFileSync(`${dir}/.env`, "PORT=eighty\nSERVICE_NAME=payments\n");
    await using service = new ServiceProcess(
      ["bun", `${process.cwd()}/src/main.ts`],
      isolatedEnv({ SERVICE_NAME: "all", PORT: "0", HOST: "127.0.0.1", DATA_DIR: `${dir}/data` }),
      dir,
    );
    expect(await service.port()).toBeGreaterThan(0);
  }, 30_000);
});

describe("the PostgreSQL password", () => {
  test("DATABASE_PASSWORD_FILE: a password with / @ # % : connects, the URL carrying none", async () => {
    const role = `adiuva_pw_${randomSuffix()}`;
    const password = "p/a@s#s%w:o rd";
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create role "${role}" login password '${password}'`);
      await admin.unsafe(`grant all on database "${database.name}" to "${role}"`);
      const owner = postgres(database.url, { max: 1, onnotice: () => {} });
      await owner.unsafe(`grant all on schema public to "${role}"`).finally(() => owner.end());
      const url = new URL(database.url);
      url.username = role;
      url.password = "";
      writeFileSync(`${temp}/db-password`, `${password}\n`);
      const keys = await testKeys();
      await using service = new ServiceProcess(
        ["bun", "src/main.ts"],
        isolatedEnv({
          SERVICE_NAME: "chat",
          PORT: "0",
          HOST: "127.0.0.1",
          DATABASE_URL: url.toString(),
          DATABASE_PASSWORD_FILE: `${temp}/db-password`,
          JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
        }),
      );
      const port = await service.port();
      const ready = await fetch(`http://127.0.0.1:${port}/ready`);
      expect(await ready.json()).toMatchObject({ checks: { database: "ok" } });
      expect(JSON.stringify(service.logs)).not.toContain(password);
    } finally {
      await admin.unsafe(`drop owned by "${role}" cascade`).catch(() => {});
      await admin.unsafe(`drop role if exists "${role}"`).catch(() => {});
      await admin.end();
    }
  }, 30_000);

  test("DATABASE_POOL_MAX bounds the connections one process opens", async () => {
    const keys = await testKeys();
    const application = "adiuva-chat";
    await using service = new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({
        SERVICE_NAME: "chat",
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: database.url,
        DATABASE_POOL_MAX: "2",
        JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      }),
    );
    const port = await service.port();
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      let most = 0;
      const load = Promise.all(
        Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${port}/ready`).then((response) => response.text())),
      );
      let done = false;
      load.finally(() => {
        done = true;
      });
      while (!done) {
        const [row] = await admin<{ count: number }[]>`
          select count(*)::int as count from pg_stat_activity
          where datname = ${database.name} and application_name = ${application}`;
        most = Math.max(most, row?.count ?? 0);
        await Bun.sleep(1);
      }
      await load;
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      await admin.end();
    }
  }, 30_000);
});

describe("the plugins service in production without Stripe", () => {
  const paidWarning = (line: LogLine) =>
    typeof line.msg === "string" && line.msg.startsWith("paid plugins cannot be sold");
  /** Ready: migrated and started, so the start's warnings are all written. */
  const readyOn = (port: number) =>
    eventually(
      () => fetch(`http://127.0.0.1:${port}/ready`).then((response) => response.status),
      (status) => status === 200,
    );
  const plugins = async (variables: Record<string, string>, keyPrefix: string) => {
    const keys = await testKeys();
    return new ServiceProcess(
      ["bun", "src/main.ts"],
      isolatedEnv({
        SERVICE_NAME: "plugins",
        NODE_ENV: "production",
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: keyPrefix,
        JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
        PLUGINS_ADMIN_USER_IDS: "00000000-0000-4000-8000-000000000001",
        ...variables,
      }),
    );
  };

  test("starts (free plugins need no Stripe) and warns once, naming what keeps paid plugins from being sold", async () => {
    const keyPrefix = `t:${randomSuffix()}`;
    try {
      await using service = await plugins({}, keyPrefix);
      const port = await service.port();
      await service.waitForLog(paidWarning);
      expect(await readyOn(port)).toBe(200);
      const warnings = service.logs.filter(paidWarning);
      expect(warnings).toHaveLength(1);
      const { level, missing, msg } = warnings[0] as LogLine;
      expect({ level, missing }).toEqual({
        level: "warn",
        missing: ["STRIPE_SECRET_KEY", "PLUGINS_STRIPE_WEBHOOK_SECRET"],
      });
      expect(msg).toContain("503 plugin_payments_unconfigured");
    } finally {
      await deleteKeysWithPrefix(keyPrefix);
    }
  }, 30_000);

  test("with only the key, the missing webhook secret is named; with both, no warning", async () => {
    const keyPrefix = `t:${randomSuffix()}`;
    try {
      await using keyOnly = await plugins({ STRIPE_SECRET_KEY: "sk_test_unused" }, keyPrefix);
      expect((await keyOnly.waitForLog(paidWarning)).missing).toEqual(["PLUGINS_STRIPE_WEBHOOK_SECRET"]);
      await using both = await plugins(
        { STRIPE_SECRET_KEY: "sk_test_unused", PLUGINS_STRIPE_WEBHOOK_SECRET: "whsec_unused" },
        keyPrefix,
      );
      expect(await readyOn(await both.port())).toBe(200);
      expect(both.logs.filter(paidWarning)).toEqual([]);
    } finally {
      await deleteKeysWithPrefix(keyPrefix);
    }
  }, 30_000);
});
