// PostgreSQL through a real PgBouncer (Debian's package) in transaction mode: the services' end-to-end
// tests run with DATABASE_URL on the pooler (DATABASE_POOL_MODE=transaction: no prepared statements,
// no session settings) and migrations on the direct connection (MIGRATION_DATABASE_URL), set by the
// test context when TEST_POOLER_PORT names the pooler. Skipped, with its reason, where PgBouncer is
// not installed (.ci/run installs it).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { TEST_DATABASE_URL } from "../../src/shared/testing/infra";

const BINARY = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((path) => existsSync(path));
const reason = "pgbouncer is not installed (Debian's pgbouncer package)";
if (!BINARY) console.log(`skipped: ${reason}`);

/**
 * The end-to-end tests of the services: auth, billing and chat together, plugins and chat together,
 * chat, agent, auth, storage and plugins' paid flow alone.
 */
const END_TO_END = [
  "test/e2e/tier-change.test.ts",
  "test/e2e/plugins.test.ts",
  "test/plugins/payments.test.ts",
  "test/chat/chat-rest.test.ts",
  "test/agent/e2e.test.ts",
  "test/auth/routes.test.ts",
  "test/storage/uploads.test.ts",
];

let pooler: ReturnType<typeof Bun.spawn> | undefined;
let port = 0;

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const found = server.port;
  server.stop(true);
  return found;
}

beforeAll(async () => {
  if (!BINARY) return;
  const direct = new URL(TEST_DATABASE_URL);
  port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "pgbouncer-"));
  chmodSync(dir, 0o777);
  const ini = join(dir, "pgbouncer.ini");
  // Any database name is forwarded to the same one on PostgreSQL, as the test context names a fresh
  // database per file. `any`: the test PostgreSQL trusts local connections already.
  writeFileSync(
    ini,
    [
      "[databases]",
      `* = host=${direct.hostname} port=${direct.port || 5432} user=${decodeURIComponent(direct.username) || "postgres"}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "auth_type = any",
      "pool_mode = transaction",
      "max_client_conn = 500",
      "default_pool_size = 20",
      `unix_socket_dir = ${dir}`,
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      `logfile = ${join(dir, "pgbouncer.log")}`,
      "admin_users = postgres",
      "",
    ].join("\n"),
  );
  chmodSync(ini, 0o644);
  // PgBouncer refuses to run as root; as root, it is told to drop to the postgres user.
  const asRoot = process.getuid?.() === 0;
  pooler = Bun.spawn([BINARY, ...(asRoot ? ["-u", "postgres"] : []), ini], { stdout: "inherit", stderr: "inherit" });
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = postgres({ host: "127.0.0.1", port, database: "postgres", username: "postgres", prepare: false });
    try {
      await probe`select 1`;
      await probe.end();
      return;
    } catch {
      await probe.end({ timeout: 0 }).catch(() => {});
      await Bun.sleep(100);
    }
  }
  throw new Error("pgbouncer did not start");
});

afterAll(() => {
  pooler?.kill();
});

test.skipIf(!BINARY)(
  `the services' end-to-end tests pass through PgBouncer in transaction mode${BINARY ? "" : ` (skipped: ${reason})`}`,
  async () => {
    const run = Bun.spawn(["bun", "test", ...END_TO_END], {
      env: { ...process.env, TEST_POOLER_PORT: String(port) },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(run.stdout).text(),
      new Response(run.stderr).text(),
      run.exited,
    ]);
    const summary = `${out}\n${err}`;
    const passed = Number(/(\d+) pass/.exec(summary)?.[1] ?? 0);
    const failed = Number(/(\d+) fail/.exec(summary)?.[1] ?? -1);
    if (code !== 0 || failed !== 0) console.error(summary.slice(-4000));
    expect({ code, failed }).toEqual({ code: 0, failed: 0 });
    expect(passed).toBeGreaterThan(20);

    // The traffic went through the pooler: its own statistics count the transactions it carried.
    const admin = Bun.spawnSync(
      ["psql", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "pgbouncer", "-At", "-c", "SHOW STATS"],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (admin.exitCode === 0) {
      const rows = admin.stdout.toString().trim().split("\n");
      const transactions = rows
        .filter((row) => row.startsWith("adiuva_test_"))
        .reduce((sum, row) => sum + Number(row.split("|")[1] ?? 0), 0);
      expect(transactions).toBeGreaterThan(100);
    }
  },
  180_000,
);
