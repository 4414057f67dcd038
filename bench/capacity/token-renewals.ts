// Token renewals: what one `POST /api/v1/auth/refresh` costs the auth replica in CPU and PostgreSQL.
//
// A connected device renews its access token before it expires (the SDK: a minute before the
// 15-minute lifetime ends), so renewals are steady work per connected device. The replica is
// `bun src/main.ts` with SERVICE_NAME=auth and NODE_ENV=production (LOG_LEVEL=info, one line per
// request), a fresh database, a private redis-server and a local SMTP server, pinned with `taskset`
// to one core; this driver runs on the other. USERS accounts are registered and signed in once;
// then IN_FLIGHT loops rotate their refresh tokens for SECONDS (each token used once, as a device
// does). Reported: renewals/s, the replica's CPU per renewal (utime + stime from /proc), PostgreSQL
// commits and rows written per renewal (read once the replica's connections have been idle long
// enough to report them), Redis commands per renewal.
// `bun bench/capacity/token-renewals.ts [seconds=20] [in flight=8] [users=64]`
import { cpus } from "node:os";
import { createTestDatabase, randomSuffix, testKeys } from "../../src/shared/testing";
import { startTestSmtpServer } from "../../src/shared/testing/smtp";
import { isolatedEnv, ServiceProcess } from "../../test/infra/service-process";
import {
  commandsPer,
  processCpuUs,
  startPrivateRedis,
  startStatementCounter,
  statementsPer,
  writeCounters,
  writesPer,
} from "./shared";

const SECONDS = Number(process.argv[2] ?? 20);
const IN_FLIGHT = Number(process.argv[3] ?? 8);
const USERS = Number(process.argv[4] ?? 64);
const PASSWORD = "correct horse battery staple";
// PGSTAT_IDLE_INTERVAL (10 s) and a margin: by then an idle backend has reported its counters.
const STATS_FLUSH_MS = 12_000;

const cores = cpus().length;
if (cores > 1 && Bun.which("taskset")) {
  Bun.spawnSync(["taskset", "-a", "-p", "-c", "0", String(process.pid)], { stdout: "ignore" });
}

const redis = await startPrivateRedis();
const database = await createTestDatabase();
const smtp = await startTestSmtpServer();
const keys = await testKeys();
// The replica reaches PostgreSQL through a proxy that counts its statements and write transactions.
const counter = await startStatementCounter(database.url);
const command = ["bun", "src/main.ts"];
const replica = new ServiceProcess(
  cores > 1 && Bun.which("taskset") ? ["taskset", "-c", "1", ...command] : command,
  isolatedEnv({
    SERVICE_NAME: "auth",
    NODE_ENV: "production",
    LOG_LEVEL: "info",
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: counter.url,
    REDIS_URL: redis.url,
    JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
    JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    MASTER_KEY_FILE: keys.masterKeyFile,
    SMTP_URL: smtp.url,
    MAIL_FROM: "Adiuva <no-reply@example.com>",
    // One driver address sends every request: the per-IP budgets would stop the run, not the CPU.
    AUTH_IP_REQUESTS_PER_MIN: "1000000",
    AUTH_REFRESH_IP_REQUESTS_PER_MIN: "1000000",
  }),
);

try {
  const base = `http://127.0.0.1:${await replica.port()}/api/v1/auth`;
  const pid = replica.pid;
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const refreshTokens: string[] = [];
  for (let i = 0; i < USERS; i += IN_FLIGHT) {
    await Promise.all(
      Array.from({ length: Math.min(IN_FLIGHT, USERS - i) }, async () => {
        const registered = await post("/register", {
          email: `renew-${randomSuffix()}@example.com`,
          password: PASSWORD,
        });
        if (registered.status !== 201) throw new Error(`register: ${registered.status}`);
        refreshTokens.push(registered.body.refresh_token as string);
      }),
    );
  }

  // Tokens not in use; a loop takes the oldest and puts its successor back: every token is used once.
  const renew = async (seconds: number) => {
    let renewed = 0;
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() < deadline) {
          const token = refreshTokens.shift();
          if (!token) throw new Error("fewer accounts than renewals in flight");
          const answer = await post("/refresh", { refresh_token: token });
          if (answer.status !== 200) throw new Error(`refresh: ${answer.status} ${JSON.stringify(answer.body)}`);
          renewed++;
          refreshTokens.push(answer.body.refresh_token as string);
        }
      }),
    );
    return { renewed };
  };

  await renew(3); // warm-up: JIT, connection pools
  await Bun.sleep(STATS_FLUSH_MS);
  const before = {
    writes: await writeCounters(database.url),
    statements: counter.counts(),
    commands: await redis.commands(),
    cpu: processCpuUs(pid),
    redisCpu: processCpuUs(redis.pid),
    at: performance.now(),
  };
  const { renewed } = await renew(SECONDS);
  const seconds = (performance.now() - before.at) / 1000;
  const cpuMs = (processCpuUs(pid) - before.cpu) / 1000;
  const redisCpuUs = (processCpuUs(redis.pid) - before.redisCpu) / renewed;
  const commands = commandsPer(before.commands, await redis.commands(), renewed);
  const statements = statementsPer(before.statements, counter.counts(), renewed);
  await Bun.sleep(STATS_FLUSH_MS);
  const writes = writesPer(before.writes, await writeCounters(database.url), renewed);
  console.log(
    `auth replica on 1 core (${cpus()[0]?.model}, ${cores} cores, Bun ${Bun.version}), ${IN_FLIGHT} in flight, ${SECONDS} s, ${USERS} accounts`,
  );
  console.log(
    "\n| renewals | renewals/s | replica CPU ms/renewal | replica busy | renewals/s per core | write transactions/renewal | rows ins / upd / del per renewal | Redis commands/renewal | redis-server CPU µs/renewal |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  console.log(
    `| ${renewed} | ${(renewed / seconds).toFixed(0)} | ${(cpuMs / renewed).toFixed(2)} | ${((cpuMs / 1000 / seconds) * 100).toFixed(0)}% | ${(renewed / (cpuMs / 1000)).toFixed(0)} | ${statements.writeTransactions.toFixed(3)} | ${writes.inserted} / ${writes.updated} / ${writes.deleted} | ${commands.calls.toFixed(2)} | ${redisCpuUs.toFixed(0)} |`,
  );
  console.log(`\nper table: ${JSON.stringify(writes.tables)}`);
  console.log(
    `statements by kind: ${JSON.stringify(statements.byKind)}; PG xact_commit (reads included): ${writes.commits}`,
  );
  console.log(`Redis by command: ${JSON.stringify(commands.byCommand)}`);
} finally {
  await replica[Symbol.asyncDispose]();
  await smtp.close();
  await counter.stop();
  await redis.stop();
  await database.drop();
}
process.exit(0);
