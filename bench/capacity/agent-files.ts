// Agent files: what one processed file costs the worker replica in CPU, PostgreSQL and Redis.
//
// The workload of bench/agent-throughput (filesystem runs over an instant device and an instant
// model inside the worker, so only the server's own work remains: BullMQ, the run's bookkeeping,
// the AI SDK's structured output), with one worker replica in its own process, on a fresh database
// and a private redis-server. Over RUNS runs of FILES files: files/s, the replica's CPU per file
// (utime + stime from /proc), PostgreSQL commits and rows written per file (pg_stat_database and
// pg_stat_user_tables, read once the service's connections have been idle long enough to report
// them), Redis commands and redis-server CPU per file. The device calls a file takes (four) run
// in-process here; in a deployment each goes through the device RPC (bench/device-rpc).
// `bun bench/capacity/agent-files.ts [runs=16] [files per run=250] [rounds=3]`
import { createAgentService } from "../../src/agent";
import { instantDevice, instantModels } from "../agent-throughput/instant";
import {
  commandsPer,
  median,
  type PrivateRedis,
  processCpuUs,
  startPrivateRedis,
  startStatementCounter,
  statementsPer,
  writeCounters,
  writesPer,
} from "./shared";

const RUNS = Number(process.argv[2] ?? 16);
const FILES = Number(process.argv[3] ?? 250);
const ROUNDS = Number(process.argv[4] ?? 3);
// PGSTAT_IDLE_INTERVAL (10 s) and a margin: by then an idle backend has reported its counters.
const STATS_FLUSH_MS = 12_000;

const redis = await startPrivateRedis();
// The test helpers take Redis from the environment when they are loaded.
process.env.REDIS_URL = redis.url;
const { createTestContext, eventually } = await import("../../src/shared/testing");

async function round(redis: PrivateRedis) {
  const ctx = await createTestContext();
  // The service reaches PostgreSQL through a proxy that counts its statements and write transactions.
  const counter = await startStatementCounter(ctx.databaseUrl);
  ctx.defer(() => counter.stop());
  try {
    const device = instantDevice(FILES);
    const api = await ctx.start(
      [(platform) => createAgentService(platform, { rpc: device, push: device, models: instantModels() })],
      { service: "agent", env: { AGENT_WORKER: "false", DATABASE_URL: counter.url } },
    );
    const env = await ctx.envFor({ service: "agent" });
    const replica = Bun.spawn(["bun", `${import.meta.dir}/../agent-throughput/replica.ts`, ctx.keyPrefix], {
      env: {
        ...process.env,
        NODE_ENV: "test",
        LOG_LEVEL: "silent",
        DATABASE_URL: counter.url,
        REDIS_URL: env.REDIS_URL,
        JWT_PUBLIC_KEY_FILE: env.JWT_PUBLIC_KEY_FILE,
        BENCH_FILES: String(FILES),
        AGENT_WORKER_CONCURRENCY: "4",
        AGENT_ITEM_CONCURRENCY: "8",
      },
      stdout: "pipe",
      stderr: "inherit",
    });
    ctx.defer(async () => {
      replica.kill("SIGKILL");
      await replica.exited;
    });
    const { value } = await replica.stdout.getReader().read();
    if (!new TextDecoder().decode(value).includes("ready")) throw new Error("replica did not start");

    const call = async (token: string, method: string, path: string, body?: unknown) => {
      const response = await fetch(`${api.url}/api/v1/agents${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return (await response.json()) as Record<string, unknown>;
    };
    // Spread over users so tier limits (concurrent runs, runs per day) stay out of the way.
    const users = await Promise.all(
      Array.from({ length: Math.ceil(RUNS / 8) }, async (_, n) => {
        const token = await ctx.token(`bench-${n}`, "team");
        const config = await call(token, "POST", "/configs", {
          type: "filesystem",
          config: { path: `/u${n}`, max_files: FILES },
        });
        if (typeof config.id !== "string") throw new Error(`config: ${JSON.stringify(config)}`);
        return { token, configId: config.id };
      }),
    );
    await Bun.sleep(STATS_FLUSH_MS);
    const before = {
      writes: await writeCounters(ctx.databaseUrl),
      statements: counter.counts(),
      commands: await redis.commands(),
      cpu: processCpuUs(replica.pid),
      redisCpu: processCpuUs(redis.pid),
      at: performance.now(),
    };
    const runs: Array<{ token: string; id: string }> = [];
    for (let n = 0; n < RUNS; n++) {
      const user = users[n % users.length]!;
      const triggered = await call(user.token, "POST", "/trigger", {
        config_id: user.configId,
        // The instant device is not in presence: the run names it.
        device_id: "bench-device",
      });
      if (typeof triggered.run_id !== "string") throw new Error(`trigger: ${JSON.stringify(triggered)}`);
      runs.push({ token: user.token, id: triggered.run_id as string });
    }
    for (const run of runs) {
      const last = await eventually(
        () => call(run.token, "GET", `/runs/${run.id}`),
        (body) => ["succeeded", "failed", "cancelled"].includes(body.status as string),
        300_000,
        // Two polls a second stay within the tier's 200 requests a minute (a poll refused with 429 is repeated).
        500,
      );
      if (last.status !== "succeeded") throw new Error(`run ended: ${JSON.stringify(last)}`);
    }
    const seconds = (performance.now() - before.at) / 1000;
    const files = RUNS * FILES;
    const cpu = processCpuUs(replica.pid) - before.cpu;
    const redisCpu = processCpuUs(redis.pid) - before.redisCpu;
    const commands = commandsPer(before.commands, await redis.commands(), files);
    const statements = statementsPer(before.statements, counter.counts(), files);
    await Bun.sleep(STATS_FLUSH_MS);
    const writes = writesPer(before.writes, await writeCounters(ctx.databaseUrl), files);
    return {
      filesPerSecond: files / seconds,
      cpuMsPerFile: cpu / 1000 / files,
      replicaBusy: cpu / 1e6 / seconds,
      redisCpuUsPerFile: redisCpu / files,
      commands,
      writes,
      statements,
    };
  } finally {
    await ctx.close();
  }
}

try {
  const rounds: Array<Awaited<ReturnType<typeof round>>> = [];
  for (let n = 0; n < ROUNDS; n++) {
    const result = await round(redis);
    rounds.push(result);
    console.error(JSON.stringify(result));
  }
  console.log(`agent: ${RUNS} runs x ${FILES} files, one worker replica, ${ROUNDS} rounds (Bun ${Bun.version})\n`);
  console.log(
    "| round | files/s | replica CPU ms/file | replica busy | files/s per core | write transactions/file | rows ins / upd / del per file | Redis commands/file (scripts' included) | redis-server CPU µs/file |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  rounds.forEach((r, n) => {
    const w = r.writes;
    console.log(
      `| ${n + 1} | ${r.filesPerSecond.toFixed(0)} | ${r.cpuMsPerFile.toFixed(2)} | ${(r.replicaBusy * 100).toFixed(0)}% | ${(1000 / r.cpuMsPerFile).toFixed(0)} | ${r.statements.writeTransactions.toFixed(3)} | ${w.inserted} / ${w.updated} / ${w.deleted} | ${r.commands.calls.toFixed(1)} | ${r.redisCpuUsPerFile.toFixed(0)} |`,
    );
  });
  console.log(
    `\nmedians: ${median(rounds.map((r) => r.filesPerSecond)).toFixed(0)} files/s, ${median(rounds.map((r) => r.cpuMsPerFile)).toFixed(2)} ms CPU per file, ${median(rounds.map((r) => r.redisCpuUsPerFile)).toFixed(0)} µs redis-server CPU per file`,
  );
  console.log(`\nper table (last round): ${JSON.stringify(rounds.at(-1)?.writes.tables)}`);
  console.log(
    `statements by kind (last round): ${JSON.stringify(rounds.at(-1)?.statements.byKind)}; PG xact_commit (reads included): ${rounds.at(-1)?.writes.commits}`,
  );
  console.log(`Redis by command (last round): ${JSON.stringify(rounds.at(-1)?.commands.byCommand)}`);
} finally {
  await redis.stop();
}
process.exit(0);
