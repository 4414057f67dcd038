// Chat turns: CPU per turn of one chat replica, and the PostgreSQL and Redis work each turn causes.
//
// The replica is `bun src/main.ts` with SERVICE_NAME=chat, NODE_ENV=production and LOG_LEVEL=info
// (as deployed: the real rate limiter, daily quota, Redis turn log, memory recall and extraction in
// PostgreSQL), on a fresh database and a private redis-server, pinned with `taskset` to one core;
// this driver runs on the other. The model is the fake OpenAI-compatible server at the HTTP
// boundary, in this process: first token after FIRST_TOKEN_MS, then one word every CHUNK_MS, as a
// provider streams; memory extraction finds no new fact. DEVICES SDK devices (one user each, tier
// team) each run turns back to back over the real WebSocket, starting one at most every MIN_GAP_MS
// (under the tier's 200 chat requests a minute); every fifth turn starts a new conversation, the
// others continue the device's conversation (its history is loaded).
//
// Per reply length (SHORT_WORDS and LONG_WORDS words), over MEASURE_S seconds after a warm-up:
// turns/s, the replica's CPU per turn (utime + stime from /proc), PostgreSQL statements and write
// transactions per turn (counted by a proxy in front of PostgreSQL, in a process of its own) and
// rows written (pg_stat_user_tables of the fresh database, read after the replica's connections have
// been idle long enough to report them), Redis commands, redis-server CPU and the Redis memory a
// finished turn holds, and the model requests per turn. From the two lengths: CPU per turn = fixed +
// per chunk. With two cores, 48 devices keep the replica 65-80% busy; more load the driver's core
// (devices, model, PostgreSQL, Redis) until queries wait past DATABASE_WAIT_MS.
// `bun bench/capacity/chat-turns.ts [devices=48] [measure seconds=40]`
import { cpus } from "node:os";
import { DeviceClient } from "../../src/client";
import { createTestDatabase, signTestToken, startFakeOpenAi, testKeys } from "../../src/shared/testing";
import { isolatedEnv, ServiceProcess } from "../../test/infra/service-process";
import {
  commandsPer,
  type PrivateRedis,
  processCpuUs,
  processRss,
  spawnStatementCounter,
  startPrivateRedis,
  statementsPer,
  writeCounters,
  writesPer,
} from "./shared";

const DEVICES = Number(process.argv[2] ?? 48);
const MEASURE_S = Number(process.argv[3] ?? 40);
const WARMUP_S = 10;
const FIRST_TOKEN_MS = 300;
const CHUNK_MS = 20;
const MIN_GAP_MS = 400;
const SHORT_WORDS = 20;
const LONG_WORDS = 200;
// PGSTAT_IDLE_INTERVAL (10 s) and a margin: by then an idle backend has reported its counters.
const STATS_FLUSH_MS = 12_000;

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i % 100}`).join(" ");
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? 0;

const cores = cpus().length;
if (cores > 1 && Bun.which("taskset")) {
  // The driver (fake model and devices) keeps off the replica's core.
  Bun.spawnSync(["taskset", "-a", "-p", "-c", "0", String(process.pid)], { stdout: "ignore" });
}

interface Phase {
  words: number;
  turns: number;
  seconds: number;
  chunksPerTurn: number;
  cpuMsPerTurn: number;
  replicaBusy: number;
  redisCpuUsPerTurn: number;
  /** Redis memory a finished turn holds while it stays resumable (CHAT_RESUME_TTL_S), in bytes. */
  redisBytesPerTurn: number;
  commands: ReturnType<typeof commandsPer>;
  writes: ReturnType<typeof writesPer>;
  statements: ReturnType<typeof statementsPer>;
  modelRequests: Record<string, number>;
  firstChunkP50: number;
  firstChunkP99: number;
  failures: number;
}

async function run(redis: PrivateRedis, databaseUrl: string, defer: (cleanup: () => Promise<void>) => void) {
  const keys = await testKeys();
  const llm = startFakeOpenAi({ firstTokenDelayMs: FIRST_TOKEN_MS });
  defer(() => llm.close());
  let replyWords = SHORT_WORDS;
  llm.onChat(() => ({ text: words(replyWords), chunkDelayMs: CHUNK_MS }));
  llm.onStructured(() => ({ json: { facts: [] } }));

  // The replica reaches PostgreSQL through a proxy that counts its statements and write transactions,
  // in a process of its own (in this one, the devices' and the model's work would delay every query).
  const counter = await spawnStatementCounter(databaseUrl);
  defer(() => counter.stop());
  const command = ["bun", "src/main.ts"];
  const replica = new ServiceProcess(
    cores > 1 && Bun.which("taskset") ? ["taskset", "-c", "1", ...command] : command,
    isolatedEnv({
      SERVICE_NAME: "chat",
      NODE_ENV: "production",
      LOG_LEVEL: "info",
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: counter.url,
      REDIS_URL: redis.url,
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      LLM_BASE_URL: llm.url,
      LLM_API_KEY: "sk-bench",
    }),
  );
  defer(() => replica[Symbol.asyncDispose]());
  const url = `ws://127.0.0.1:${await replica.port()}/api/v1/ws/device`;
  // taskset execs bun: the child is the replica itself.
  const pid = replica.pid;

  const devices: DeviceClient[] = [];
  for (let n = 0; n < DEVICES; n++) {
    const token = await signTestToken(`chat-${n}`, "team");
    const device = new DeviceClient({ url, deviceId: `d${n}`, token: () => token, tools: { task_list: () => [] } });
    await device.connect();
    devices.push(device);
  }
  defer(async () => {
    for (const device of devices) device.close();
  });

  /** Every device runs turns until `until`; returns the turns completed and first-chunk times. */
  const drive = async (until: number) => {
    let turns = 0;
    let failures = 0;
    let chunks = 0;
    const firstChunk: number[] = [];
    await Promise.all(
      devices.map(async (device, n) => {
        let chatId: string | undefined;
        for (let turn = n % 5; performance.now() < until; turn++) {
          const started = performance.now();
          const stream = device.chat({
            text: `Question ${turn} about project ${n}?`,
            chatId: turn % 5 ? chatId : undefined,
          });
          let first = 0;
          for await (const frame of stream) {
            chunks++;
            if (!first && (frame.chunk as { type: string }).type === "text-delta") first = performance.now() - started;
          }
          try {
            const done = await stream.done;
            chatId = done.chat_id;
            turns++;
            firstChunk.push(first);
          } catch (error) {
            failures++;
            if (failures === 1) console.error(`turn failed: ${(error as Error).message}`);
          }
          const gap = MIN_GAP_MS - (performance.now() - started);
          if (gap > 0) await Bun.sleep(gap);
        }
      }),
    );
    return { turns, failures, chunks, firstChunk };
  };

  const modelRequests = () => {
    const counts: Record<string, number> = {};
    for (const request of llm.requests) {
      const body = request.body as { response_format?: unknown } | undefined;
      const kind = request.path.endsWith("/embeddings") ? "embeddings" : body?.response_format ? "structured" : "chat";
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
    return counts;
  };

  const phases: Phase[] = [];
  for (const length of [SHORT_WORDS, LONG_WORDS]) {
    replyWords = length;
    console.error(`${length}-word replies: warm-up`);
    await drive(performance.now() + WARMUP_S * 1000);
    await Bun.sleep(STATS_FLUSH_MS);
    const before = {
      writes: await writeCounters(databaseUrl),
      statements: await counter.counts(),
      commands: await redis.commands(),
      redisMemory: await redis.usedMemory(),
      cpu: processCpuUs(pid),
      redisCpu: processCpuUs(redis.pid),
      requests: modelRequests(),
      at: performance.now(),
    };
    console.error(`${length}-word replies: measuring ${MEASURE_S} s`);
    const driven = await drive(performance.now() + MEASURE_S * 1000);
    const seconds = (performance.now() - before.at) / 1000;
    // Memory extraction runs after each turn's reply: give the last ones time to end.
    await Bun.sleep(1000);
    const cpu = processCpuUs(pid) - before.cpu;
    const redisCpu = processCpuUs(redis.pid) - before.redisCpu;
    const commands = commandsPer(before.commands, await redis.commands(), driven.turns);
    const redisBytesPerTurn = ((await redis.usedMemory()) - before.redisMemory) / driven.turns;
    const requests = modelRequests();
    const statements = statementsPer(before.statements, await counter.counts(), driven.turns);
    await Bun.sleep(STATS_FLUSH_MS);
    const writes = writesPer(before.writes, await writeCounters(databaseUrl), driven.turns);
    const perTurn: Record<string, number> = {};
    for (const [kind, count] of Object.entries(requests)) {
      perTurn[kind] = Number(((count - (before.requests[kind] ?? 0)) / driven.turns).toFixed(3));
    }
    const phase: Phase = {
      words: length,
      turns: driven.turns,
      seconds,
      chunksPerTurn: driven.chunks / driven.turns,
      cpuMsPerTurn: cpu / 1000 / driven.turns,
      replicaBusy: cpu / 1e6 / seconds,
      redisCpuUsPerTurn: redisCpu / driven.turns,
      redisBytesPerTurn,
      commands,
      writes,
      statements,
      modelRequests: perTurn,
      firstChunkP50: percentile(driven.firstChunk, 50),
      firstChunkP99: percentile(driven.firstChunk, 99),
      failures: driven.failures,
    };
    phases.push(phase);
    console.error(JSON.stringify(phase));
  }
  const rss = processRss(pid);
  return { phases, rss };
}

function report({ phases, rss }: Awaited<ReturnType<typeof run>>) {
  console.log(
    `chat replica on 1 core (${cpus()[0]?.model}, ${cores} cores, Bun ${Bun.version}); ${DEVICES} devices, ` +
      `model: first token ${FIRST_TOKEN_MS} ms, a word every ${CHUNK_MS} ms; ${MEASURE_S} s per length`,
  );
  console.log(
    "\n| reply | turns | turns/s | chunks/turn | replica CPU ms/turn | replica busy | turns/s per core | first chunk p50 / p99 ms | failed |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const p of phases) {
    console.log(
      `| ${p.words} words | ${p.turns} | ${(p.turns / p.seconds).toFixed(1)} | ${p.chunksPerTurn.toFixed(1)} | ${p.cpuMsPerTurn.toFixed(2)} | ${(p.replicaBusy * 100).toFixed(0)}% | ${(1000 / p.cpuMsPerTurn).toFixed(0)} | ${p.firstChunkP50.toFixed(0)} / ${p.firstChunkP99.toFixed(0)} | ${p.failures} |`,
    );
  }
  const [short, long] = phases as [Phase, Phase];
  const perChunk = (long.cpuMsPerTurn - short.cpuMsPerTurn) / (long.chunksPerTurn - short.chunksPerTurn);
  console.log(
    `\nfit: CPU per turn = ${(short.cpuMsPerTurn - perChunk * short.chunksPerTurn).toFixed(2)} ms + ${(perChunk * 1000).toFixed(1)} µs per chunk`,
  );
  console.log(`replica RSS at the end: ${(rss / 2 ** 20).toFixed(0)} MiB`);
  console.log(
    "\n| reply | write transactions/turn | statements/turn | rows inserted/turn | rows updated/turn | PG xact_commit/turn (reads included) |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const p of phases) {
    const w = p.writes;
    const statements = Object.values(p.statements.byKind).reduce((sum, n) => sum + n, 0);
    console.log(
      `| ${p.words} words | ${p.statements.writeTransactions.toFixed(3)} | ${statements.toFixed(2)} | ${w.inserted} | ${w.updated} | ${w.commits} |`,
    );
  }
  for (const p of phases) console.log(`\n${p.words} words, statements by kind: ${JSON.stringify(p.statements.byKind)}`);
  for (const p of phases) console.log(`\n${p.words} words, per table: ${JSON.stringify(p.writes.tables)}`);
  console.log(
    "\n| reply | Redis commands/turn (scripts' included) | redis-server CPU µs/turn | Redis bytes held/turn | model requests/turn |",
  );
  console.log("|---|---|---|---|---|");
  for (const p of phases) {
    console.log(
      `| ${p.words} words | ${p.commands.calls.toFixed(1)} | ${p.redisCpuUsPerTurn.toFixed(0)} | ${p.redisBytesPerTurn.toFixed(0)} | ${JSON.stringify(p.modelRequests)} |`,
    );
  }
  for (const p of phases) console.log(`\n${p.words} words, Redis by command: ${JSON.stringify(p.commands.byCommand)}`);
}

const redis = await startPrivateRedis();
const database = await createTestDatabase();
const cleanups: Array<() => Promise<void>> = [];
try {
  report(await run(redis, database.url, (cleanup) => cleanups.push(cleanup)));
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await redis.stop();
  await database.drop();
}
process.exit(0);
