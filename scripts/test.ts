// `bun run test`: makes sure PostgreSQL and Redis are reachable (starting local ones when it can),
// runs every test, and ends with one line `N passed, N failed[, N skipped]` read from bun's JUnit report.
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { assertInfrastructure, TEST_DATABASE_URL, TEST_REDIS_URL } from "../src/shared/testing/infra";

const run = (cmd: string[]) => Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit" }).exitCode === 0;
const has = (bin: string) => Bun.which(bin) !== null;

async function reachable(): Promise<string | undefined> {
  try {
    await assertInfrastructure();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

async function ensureInfrastructure(): Promise<void> {
  if ((await reachable()) === undefined) return;
  const local = (url: string) => ["127.0.0.1", "localhost"].includes(new URL(url).hostname);
  if (local(TEST_DATABASE_URL) && has("pg_ctlcluster") && existsSync("/etc/postgresql")) {
    for (const version of readdirSync("/etc/postgresql")) {
      run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]);
    }
  }
  if (local(TEST_REDIS_URL) && has("redis-server")) {
    mkdirSync("/tmp/adiuva-redis", { recursive: true });
    run([
      "redis-server",
      "--daemonize",
      "yes",
      "--bind",
      "127.0.0.1",
      "--port",
      String(new URL(TEST_REDIS_URL).port || 6379),
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      "/tmp/adiuva-redis",
    ]);
  }
  if ((await reachable()) !== undefined && has("docker")) {
    run(["docker", "compose", "-f", "infra/compose.test.yaml", "up", "-d", "--wait"]);
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    const problem = await reachable();
    if (problem === undefined) return;
    if (attempt === 49) {
      console.error(
        `${problem}\nStart PostgreSQL and Redis (or point DATABASE_URL / REDIS_URL at running ones) and try again.`,
      );
      process.exit(2);
    }
    await Bun.sleep(200);
  }
}

await ensureInfrastructure();
mkdirSync(".data", { recursive: true });
const report = ".data/junit.xml";
const args = process.argv.slice(2);
// bunfig.toml's [test] timeout is not honoured by bun test 1.4.4; the flag is.
const child = Bun.spawn(
  ["bun", "test", "--timeout=30000", "--reporter=junit", `--reporter-outfile=${report}`, ...args],
  {
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL },
  },
);
const code = await child.exited;
let summary = { tests: 0, failures: 0, skipped: 0 };
if (existsSync(report)) {
  const xml = readFileSync(report, "utf8");
  const root = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? "";
  const attr = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(root)?.[1] ?? 0);
  summary = { tests: attr("tests"), failures: attr("failures") + attr("errors"), skipped: attr("skipped") };
}
const passed = summary.tests - summary.failures - summary.skipped;
const failed = code !== 0 && summary.failures === 0 ? 1 : summary.failures;
console.log(`${passed} passed, ${failed} failed${summary.skipped ? `, ${summary.skipped} skipped` : ""}`);
process.exit(code === 0 && failed === 0 ? 0 : 1);
