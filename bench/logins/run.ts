// `bun bench/logins/run.ts [seconds=10] [in-flight=8] [users=64] [--executable=dist/auth-service]`: successful logins per second of
// one auth replica, and the CPU one login costs, to size auth's CPU limit in compose.yaml.
//
// The replica is `bun src/main.ts` with SERVICE_NAME=auth and NODE_ENV=production, the production
// argon2id parameters (env.ts's defaults: 19456 KiB, 2 passes, 2 hashes at once), a fresh
// PostgreSQL database and Redis under its own key prefix, pinned with `taskset` to one core while
// this driver runs on another. Logins/s at one full core is measured; the figure under a CPU limit
// of `c` cores is computed: the CPU time the replica's process spent (utime + stime of all its
// threads, from /proc/<pid>/stat) divided by the logins served gives CPU seconds per login, and
// Docker's CFS quota grants `c` CPU seconds per second, so logins/s = c / (CPU seconds per login)
// while logins are CPU-bound (they are: argon2 is the bulk of a login).
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import {
  createTestDatabase,
  deleteKeysWithPrefix,
  randomSuffix,
  TEST_REDIS_URL,
  testKeys,
} from "../../src/shared/testing";
import { isolatedEnv, ServiceProcess } from "../../test/infra/service-process";

const args = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
// `--executable=dist/auth-service` measures the compiled executable instead of the sources.
const executable = process.argv.find((arg) => arg.startsWith("--executable="))?.slice("--executable=".length);
const SECONDS = Number(args[0] ?? 10);
const IN_FLIGHT = Number(args[1] ?? 8);
const USERS = Number(args[2] ?? 64);
const LIMITS = [0.25, 0.5, 0.75, 1];
const PASSWORD = "correct horse battery staple";

const cores = cpus().length;
const serverCore = cores > 1 ? "1" : "0";
const driverCore = "0";
if (cores > 1 && Bun.which("taskset")) {
  // The driver keeps off the replica's core.
  Bun.spawnSync(["taskset", "-a", "-p", "-c", driverCore, String(process.pid)], { stdout: "ignore" });
}

const database = await createTestDatabase();
const keyPrefix = `bench:${randomSuffix()}`;
const keys = await testKeys();
const replica = executable ? [executable] : ["bun", "src/main.ts"];
const command = Bun.which("taskset") ? ["taskset", "-c", serverCore, ...replica] : replica;
const service = new ServiceProcess(
  command,
  isolatedEnv({
    SERVICE_NAME: "auth",
    NODE_ENV: "production",
    LOG_LEVEL: "info", // as in production: one request line per login
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: keyPrefix,
    JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
    JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    MASTER_KEY_FILE: keys.masterKeyFile,
    // One driver address sends every login: the per-IP budget would stop the run, not the CPU.
    AUTH_IP_REQUESTS_PER_MIN: "1000000",
  }),
);

/** CPU seconds used so far by the process with this pid, all threads. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return ticks / 100; // USER_HZ
}

try {
  const base = `http://127.0.0.1:${await service.port()}/api/v1/auth`;
  // taskset execs bun: the child is the replica itself.
  const pid = service.pid;
  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  const emails = Array.from({ length: USERS }, (_, i) => `bench-${i}-${randomSuffix()}@example.com`);
  for (let i = 0; i < emails.length; i += IN_FLIGHT) {
    await Promise.all(
      emails.slice(i, i + IN_FLIGHT).map(async (email) => {
        const response = await post("/register", { email, password: PASSWORD });
        if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`);
      }),
    );
  }

  const run = async (seconds: number) => {
    let ok = 0;
    let refused = 0;
    let next = 0;
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() < deadline) {
          const email = emails[next++ % emails.length] as string;
          const sent = performance.now();
          const response = await post("/login", { email, password: PASSWORD });
          await response.arrayBuffer();
          if (response.status === 200) {
            ok++;
            latencies.push(performance.now() - sent);
          } else refused++;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      ok,
      refused,
      perSecond: ok / elapsed,
      cpuPerLogin: (cpuSeconds(pid) - cpuBefore) / ok,
      cpuUse: (cpuSeconds(pid) - cpuBefore) / elapsed,
      p50: latencies[Math.floor(latencies.length * 0.5)] ?? 0,
      p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    };
  };

  await run(2); // warm-up: JIT, connection pools
  const result = await run(SECONDS);
  console.log(
    `auth replica (${replica.join(" ")}) on 1 core (${cpus()[0]?.model}, ${cores} cores, Bun ${Bun.version}), ${IN_FLIGHT} in flight, ${SECONDS} s:`,
  );
  console.log(
    `  ${result.perSecond.toFixed(1)} logins/s, ${result.refused} refused, p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms`,
  );
  console.log(
    `  CPU: ${(result.cpuPerLogin * 1000).toFixed(1)} ms per login, the replica busy ${(result.cpuUse * 100).toFixed(0)}% of its core`,
  );
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  console.log(`  peak resident memory of the replica: ${Math.round(Number(peak) / 1024)} MiB`);
  for (const limit of LIMITS) {
    console.log(`  at cpus: "${limit}": ${(limit / result.cpuPerLogin).toFixed(1)} logins/s per replica`);
  }
} finally {
  await service[Symbol.asyncDispose]();
  await database.drop();
  await deleteKeysWithPrefix(keyPrefix);
}
