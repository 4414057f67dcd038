// Resumable chat turns: resume latency across instances, and what the turn log adds per chunk.
//
// Two chat instances (A and B) share one PostgreSQL database and one Redis: a private
// `redis-server` this benchmark starts on its own port (BENCH_REDIS_PORT, default 6390) and stops
// at the end, so its command counts hold only this run's traffic. A fake OpenAI-compatible server
// streams every reply at a steady chunk rate. One user has an SDK device on each instance.
//
// 1. Resume. Device A starts a turn on A; once A has sent it chunk RESUME_AT_SEQ, device B sends
//    `chat_resume {after_seq: AFTER_SEQ}` to B, which does not generate the turn. Per round, from
//    the moment `chat_resume` is sent (t0), on device B:
//      first replayed   the first chunk (seq AFTER_SEQ + 1) arrives
//      replay complete  the last chunk device A had received at t0 (seq L) arrives
//      first live       the first chunk past L arrives: the first one produced after the resume was
//                       sent, as seen by the device on the generating instance. It includes the wait
//                       for the model's next chunk (0 to CHUNK_INTERVAL_MS)
//      live lag         that chunk's arrival on device B minus its arrival on device A: how far the
//                       resumed device runs behind the turn's own socket once caught up
//    Then device A cancels the turn.
// 2. Cost per chunk. Long turns of LONG_CHUNKS text chunks on instance A, alternating the
//    resumable path (Redis turn log) and the peer: the same service, engine, gateway and frame
//    handler, whose turn log refuses `admit` (as when Redis is away), so ChatTurns runs the turn
//    unlogged: no XADD, no PUBLISH, no end entry. For each: Redis commands (INFO commandstats
//    after CONFIG RESETSTAT on the private Redis), Redis CPU (commandstats usec, and the server
//    process's utime+stime), and this process's CPU (process.cpuUsage) per chunk. Everything runs
//    in this process (fake model, both instances, both devices), so the CPU figures are totals per
//    chunk; the difference between the paths is the turn log's cost. The embedded MemoryTurnLog is
//    shown for information.
//    2b: RedisTurnLog.append called alone on an admitted turn, one call per ~1 ms, against its two
//    commands alone, and two ways of sending them that the code does not use (one ioredis
//    pipeline; Bun's built-in Redis client), each minus the same loop empty.
// 3. Server-added time to first token, as bench/chat-ttft: the AI SDK provider straight to the fake
//    model is the peer; chat over the WebSocket with the Redis turn log, and unlogged, interleaved.
//
// Needs PostgreSQL like the tests and `redis-server` on the PATH: `bun bench/chat-resume/index.ts`.
import * as os from "node:os";
import { streamText } from "ai";
import { RedisClient } from "bun";
import { Redis } from "ioredis";
import type { ChatServiceModule } from "../../src/chat";
import { createChatService } from "../../src/chat";
import { MemoryTurnLog } from "../../src/chat/turns/memory-turn-log";
import type { TurnLog } from "../../src/chat/turns/turn-log";
import { ChatTurns } from "../../src/chat/turns/turns";
import { type ChatFrameHandler, createChatFrameHandler, gatewayChatHandlers } from "../../src/chat/ws";
import { type ChatStream, DeviceClient } from "../../src/client";
import { createLlm } from "../../src/shared/llm";
import { silentLogger } from "../../src/shared/logger";
import type { Platform } from "../../src/shared/platform";
import type { RateLimiter } from "../../src/shared/rate-limit";
import { createTestContext, type ScriptedReply, startFakeOpenAi } from "../../src/shared/testing";
import { UnloggedTurnLog } from "./unlogged-turn-log";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const WARMUP = 20;
const CHUNK_INTERVAL_MS = Number(process.env.BENCH_CHUNK_INTERVAL_MS ?? 10);
const RESUME_AT_SEQ = 30;
const AFTER_SEQ = 9;
const LONG_CHUNKS = Number(process.env.BENCH_LONG_CHUNKS ?? 5000);
const LONG_INTERVAL_MS = 1;
const LONG_REPEATS = Number(process.env.BENCH_LONG_REPEATS ?? 3);
const TTFT_ITERATIONS = Number(process.env.BENCH_TTFT_ITERATIONS ?? 200);
const TTFT_WARMUP = 30;
const FIRST_TOKEN_MS = 20;
const REDIS_PORT = Number(process.env.BENCH_REDIS_PORT ?? 6390);
const ROUND_TIMEOUT_MS = 10_000;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};
const median = (values: number[]) => percentile(values, 50);
const ms = (value: number) => value.toFixed(2);
const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i % 100}`).join(" ");

function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** utime + stime of a process in µs (Linux /proc, 100 clock ticks per second). */
async function processCpuUs(pid: number): Promise<number> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text();
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** INFO commandstats as command -> calls and server µs. */
function commandStats(info: string): Map<string, { calls: number; usec: number }> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const line of info.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (match) stats.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

// --- The private Redis --------------------------------------------------------------------------
const redisServer = Bun.spawn(
  ["redis-server", "--port", String(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
  { stdout: "ignore", stderr: "inherit" },
);
// Stopped however this process ends (a failed measurement included).
process.on("exit", () => redisServer.kill());
const redisUrl = `redis://127.0.0.1:${REDIS_PORT}`;
/** A connection to the private Redis once it listens: a fresh client per attempt, none retrying on its own. */
async function connectAdmin(): Promise<Redis> {
  for (let attempt = 0; ; attempt++) {
    if (redisServer.exitCode !== null) throw new Error(`redis-server on port ${REDIS_PORT} exited (port taken?)`);
    const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on("error", () => {});
    try {
      await client.connect();
      return client;
    } catch (error) {
      client.disconnect();
      if (attempt > 100) throw error;
      await Bun.sleep(100);
    }
  }
}
const admin = await connectAdmin();
const serverInfo = await admin.info("server");
if (!serverInfo.includes(`process_id:${redisServer.pid}`)) {
  throw new Error(`port ${REDIS_PORT} is served by another Redis than the one started here`);
}
const redisVersion = /redis_version:(\S+)/.exec(serverInfo)?.[1] ?? "?";

const llm = startFakeOpenAi();
let reply: ScriptedReply = { text: "ready" };
/** When the fake model last received a chat request (it answers at once, after its first-token delay). */
let modelRequestAt = 0;
llm.onChat(() => {
  modelRequestAt = performance.now();
  return reply;
});
llm.onStructured(() => ({ json: { facts: [] } }));
const ctx = await createTestContext();

// The per-minute chat rate limit would stop a benchmark; it is not what is measured here.
const unlimited: RateLimiter = {
  check: async (_key, rule) => ({
    allowed: true,
    limit: rule.limit,
    remaining: rule.limit,
    resetMs: 0,
    retryAfterMs: 0,
    source: "local",
  }),
  reset: async () => {},
};
const env = { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk", MEMORY_BUDGET_MS: "0", REDIS_URL: redisUrl };

// Instance A: its socket's chat frames go to whichever frame handler the current measurement uses.
let framesA: ChatFrameHandler | undefined;
const frames = (): ChatFrameHandler => {
  if (!framesA) throw new Error("instance A has no frame handler yet");
  return framesA;
};
const switchable: ChatFrameHandler = {
  chat: (session, frame) => frames().chat(session, frame),
  cancel: (session, frame) => frames().cancel(session, frame),
  resume: (session, frame) => frames().resume(session, frame),
  activeTurns: (userId) => frames().activeTurns(userId),
  stop: (deadline) => frames().stop(deadline),
};
const serverA = await ctx.start(
  [
    (platform) =>
      createChatService(platform, { limiter: unlimited, gateway: { chat: gatewayChatHandlers(switchable) } }),
  ],
  { service: "chat", env },
);
const moduleA = serverA.modules[0] as ChatServiceModule;
const withLog = (platform: Platform, log: TurnLog) =>
  createChatFrameHandler(
    new ChatTurns(
      moduleA.engine,
      log,
      {
        instanceId: platform.instanceId,
        resumeTtlS: platform.env.CHAT_RESUME_TTL_S,
        leaseMs: platform.env.CHAT_TURN_LEASE_MS,
        maxRunning: platform.env.CHAT_MAX_RUNNING_TURNS,
      },
      silentLogger(),
    ),
    silentLogger(),
  );
const paths = {
  redis: moduleA.frames,
  unlogged: withLog(serverA.platform, new UnloggedTurnLog()),
  memory: withLog(serverA.platform, new MemoryTurnLog()),
};
framesA = paths.redis;
const serverB = await ctx.start([(platform) => createChatService(platform, { limiter: unlimited })], {
  service: "chat",
  env,
});

const userId = "bench-resume";
const device = async (url: string, deviceId: string) => {
  const client = new DeviceClient({
    url: `${url.replace(/^http/, "ws")}/api/v1/ws/device`,
    deviceId,
    token: () => ctx.token(userId, "team"),
    tools: { task_list: () => [] },
  });
  await client.connect();
  return client;
};
const deviceA = await device(serverA.url, "bench-a");
const deviceB = await device(serverB.url, "bench-b");

// --- 1. Resume on the other instance ------------------------------------------------------------
interface Signal {
  promise: Promise<void>;
  resolve: () => void;
}
interface Round {
  requestId: string;
  a: Map<number, number>;
  b: Map<number, number>;
  lastA: number;
  /** The last seq device A had when `chat_resume` was sent; -1 before. */
  atResume: number;
  reached: Signal;
  live: Signal;
}
let round: Round | undefined;
deviceA.on("chat_chunk", (frame) => {
  if (frame.request_id !== round?.requestId) return;
  round.a.set(frame.seq, performance.now());
  round.lastA = Math.max(round.lastA, frame.seq);
  if (frame.seq >= RESUME_AT_SEQ) round.reached.resolve();
});
deviceB.on("chat_chunk", (frame) => {
  if (frame.request_id !== round?.requestId) return;
  if (!round.b.has(frame.seq)) round.b.set(frame.seq, performance.now());
  if (round.atResume >= 0 && frame.seq > round.atResume) round.live.resolve();
});

async function resumeRound() {
  const current: Round = {
    requestId: crypto.randomUUID(),
    a: new Map(),
    b: new Map(),
    lastA: -1,
    atResume: -1,
    reached: Promise.withResolvers<void>(),
    live: Promise.withResolvers<void>(),
  };
  round = current;
  const streams: ChatStream[] = [deviceA.chat({ text: "Tell me a long story.", requestId: current.requestId })];
  try {
    await within(current.reached.promise, ROUND_TIMEOUT_MS, "generating turn");
    // A device comes back at any moment, not just after a chunk: a uniform wait within one interval.
    await Bun.sleep(Math.random() * CHUNK_INTERVAL_MS);
    current.atResume = current.lastA;
    const sent = performance.now();
    streams.push(deviceB.resumeChat(current.requestId, { afterSeq: AFTER_SEQ }));
    await within(current.live.promise, ROUND_TIMEOUT_MS, "resumed turn");
    const liveSeq = current.atResume + 1;
    const liveB = current.b.get(liveSeq);
    const liveA = current.a.get(liveSeq);
    const firstB = current.b.get(AFTER_SEQ + 1);
    const replayedB = current.b.get(current.atResume);
    if (liveB === undefined || liveA === undefined || firstB === undefined || replayedB === undefined) {
      throw new Error(`round ${current.requestId}: a chunk is missing`);
    }
    return {
      firstReplayed: firstB - sent,
      replayComplete: replayedB - sent,
      firstLive: liveB - sent,
      liveLag: liveB - liveA,
      replayed: current.atResume - AFTER_SEQ,
    };
  } finally {
    deviceA.cancelChat(current.requestId);
    await within(Promise.allSettled(streams.map((stream) => stream.done)), ROUND_TIMEOUT_MS, "cancel");
    round = undefined;
  }
}

framesA = paths.redis;
reply = { text: words(400), chunkDelayMs: CHUNK_INTERVAL_MS };
for (let i = 0; i < WARMUP; i++) await resumeRound();
const rounds: Array<Awaited<ReturnType<typeof resumeRound>>> = [];
for (let i = 0; i < ROUNDS; i++) rounds.push(await resumeRound());
await moduleA.engine.memory.idle();

// --- 2. Cost per chunk ----------------------------------------------------------------------------
type PathName = keyof typeof paths;
interface LongTurn {
  path: PathName;
  chunks: number;
  cpuUs: number;
  wallMs: number;
  commands: Map<string, { calls: number; usec: number }>;
  redisCpuUs: number;
}
const IGNORED = new Set(["config", "info"]);

async function longTurn(path: PathName): Promise<LongTurn> {
  framesA = paths[path];
  reply = { text: words(LONG_CHUNKS), chunkDelayMs: LONG_INTERVAL_MS };
  await admin.config("RESETSTAT");
  const redisCpu = await processCpuUs(redisServer.pid);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const stream = deviceA.chat({ text: "Write it all out." });
  await within(stream.done, 120_000, `long turn (${path})`);
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - started;
  const redisCpuUs = (await processCpuUs(redisServer.pid)) - redisCpu;
  const commands = commandStats(await admin.info("commandstats"));
  for (const name of IGNORED) commands.delete(name);
  await moduleA.engine.memory.idle();
  await Bun.sleep(200);
  return { path, chunks: stream.lastSeq + 1, cpuUs: used.user + used.system, wallMs, commands, redisCpuUs };
}

const long: LongTurn[] = [];
await longTurn("redis"); // warm-up
for (let r = 0; r < LONG_REPEATS; r++) {
  const order: PathName[] = r % 2 === 0 ? ["unlogged", "redis", "memory"] : ["memory", "redis", "unlogged"];
  for (const path of order) long.push(await longTurn(path));
}

// The append alone, and its two commands alone, paced one per event-loop turn of ~1 ms as a
// streamed turn's chunks are: CPU of this process and of Redis per call, minus the same loop empty.
const APPEND_CALLS = 3000;
const chunkJson = { type: "text-delta", id: "0", delta: "w42 " };
const appendRef = { userId: "bench-append", requestId: crypto.randomUUID() };
const commandRedis = serverA.platform.redis!;
const bareKey = `${ctx.keyPrefix}:bench:bare`;
const bunRedis = new RedisClient(redisUrl);
await bunRedis.connect();
const bareCalls: Record<"empty" | "append" | "xadd" | "publish" | "pipeline" | "bun", (i: number) => void> = {
  empty: () => {},
  append: (i) => moduleA.turns.log.append(appendRef, i, chunkJson),
  xadd: (i) => void commandRedis.xadd(bareKey, `0-${i + 1}`, "c", JSON.stringify(chunkJson)).catch(() => {}),
  publish: (i) => void serverA.platform.bus.publish(bareKey, `{"s":${i},"c":${JSON.stringify(chunkJson)}}`),
  // Not what append does: both commands in one ioredis pipeline (one write), for comparison.
  pipeline: (i) => {
    const json = JSON.stringify(chunkJson);
    void commandRedis
      .pipeline()
      .xadd(bareKey, `0-${i + 1}`, "c", json)
      .publish(`${bareKey}:live`, `{"s":${i},"c":${json}}`)
      .exec()
      .catch(() => {});
  },
  // Not what append does: both commands on Bun's built-in client, as the device RPC's hot path.
  bun: (i) => {
    const json = JSON.stringify(chunkJson);
    bunRedis.send("XADD", [bareKey, `0-${i + 1}`, "c", json]).catch(() => {});
    bunRedis.send("PUBLISH", [`${bareKey}:live`, `{"s":${i},"c":${json}}`]).catch(() => {});
  },
};
type BareName = keyof typeof bareCalls;
async function bare(name: BareName) {
  await commandRedis.del(bareKey);
  if (name === "append") {
    await moduleA.turns.log.admit(
      { ...appendRef, chatId: crypto.randomUUID(), instanceId: serverA.platform.instanceId, startedAt: Date.now() },
      serverA.platform.env.CHAT_MAX_RUNNING_TURNS,
    );
  }
  const redisCpu = await processCpuUs(redisServer.pid);
  const cpu = process.cpuUsage();
  for (let i = 0; i < APPEND_CALLS; i++) {
    bareCalls[name](i);
    await Bun.sleep(1);
  }
  await commandRedis.ping();
  const used = process.cpuUsage(cpu);
  const redisCpuUs = (await processCpuUs(redisServer.pid)) - redisCpu;
  if (name === "append") await moduleA.turns.log.release(appendRef);
  return { name, cpuUs: (used.user + used.system) / APPEND_CALLS, redisCpuUs: redisCpuUs / APPEND_CALLS };
}
const bareRuns: Array<Awaited<ReturnType<typeof bare>>> = [];
for (let r = 0; r < LONG_REPEATS; r++) {
  const order: BareName[] =
    r % 2 === 0
      ? ["empty", "append", "xadd", "publish", "pipeline", "bun"]
      : ["bun", "pipeline", "publish", "xadd", "append", "empty"];
  for (const name of order) bareRuns.push(await bare(name));
}
await commandRedis.del(bareKey);
bunRedis.close();

// --- 3. Time to first token -----------------------------------------------------------------------
const peerModel = createLlm(
  {
    NODE_ENV: "test",
    LLM_BASE_URL: llm.url,
    LLM_API_KEY: "sk",
    LLM_CHAT_MODEL: "m",
    LLM_CLASSIFY_MODEL: "m",
    LLM_EMBEDDING_MODEL: "e",
  },
  silentLogger(),
).chatModel;
const peerTtft = async () => {
  const started = performance.now();
  const result = streamText({ model: peerModel, prompt: "hello" });
  for await (const _ of result.textStream) break;
  return { first: performance.now() - started, toModel: modelRequestAt - started };
};
const chatTtft = (path: PathName) => async () => {
  framesA = paths[path];
  const started = performance.now();
  const stream = deviceA.chat({ text: "What about project 3?" });
  let first = 0;
  for await (const frame of stream) {
    if (!first && (frame.chunk as { type: string }).type === "text-delta") first = performance.now() - started;
  }
  await stream.done;
  return { first, toModel: modelRequestAt - started };
};
reply = { text: "Sure, here is a short answer to that.", firstTokenDelayMs: FIRST_TOKEN_MS };
// What the resumable path awaits before the model is called: admit (script, MULTI, pipeline) and
// describe (HSET), timed on instance A's Redis turn log with turns that are then released.
const beforeModel: number[] = [];
for (let i = 0; i < TTFT_WARMUP + TTFT_ITERATIONS; i++) {
  const ref = { userId: "bench-admit", requestId: crypto.randomUUID() };
  const started = performance.now();
  const record = {
    ...ref,
    chatId: crypto.randomUUID(),
    instanceId: serverA.platform.instanceId,
    startedAt: Date.now(),
  };
  await moduleA.turns.log.admit(record, serverA.platform.env.CHAT_MAX_RUNNING_TURNS);
  await moduleA.turns.log.describe(ref, JSON.stringify({ facts: "x".repeat(600) }));
  if (i >= TTFT_WARMUP) beforeModel.push(performance.now() - started);
  await moduleA.turns.log.release(ref);
}
const ttftRuns = { peer: peerTtft, redis: chatTtft("redis"), unlogged: chatTtft("unlogged") };
const ttft = { peer: [] as number[], redis: [] as number[], unlogged: [] as number[] };
const toModel = { peer: [] as number[], redis: [] as number[], unlogged: [] as number[] };
for (let i = 0; i < TTFT_WARMUP + TTFT_ITERATIONS; i++) {
  // Rotated, so no path always follows the same one; the memory extraction of the previous turn
  // (in the background, after its end) is waited for, so it never overlaps a measured turn.
  const names = ["peer", "redis", "unlogged"] as const;
  for (let k = 0; k < names.length; k++) {
    const name = names[(i + k) % names.length]!;
    await moduleA.engine.memory.idle();
    const value = await ttftRuns[name]();
    if (i < TTFT_WARMUP) continue;
    ttft[name].push(value.first);
    toModel[name].push(value.toModel);
  }
}
await moduleA.engine.memory.idle();

deviceA.close();
deviceB.close();
await ctx.close();
await llm.close();
admin.disconnect();
redisServer.kill();
await redisServer.exited;

// --- Report -----------------------------------------------------------------------------------------
const cpus = os.cpus();
console.log(
  `${new Date().toISOString()} · ${cpus.length} cores (${cpus[0]?.model ?? "?"}), Linux ${os.release()}, ` +
    `Bun ${Bun.version}, Redis ${redisVersion} (private, port ${REDIS_PORT}), load average ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(" ")}`,
);

console.log(
  `\n1. chat_resume on instance B, turn generated on instance A: ${ROUNDS} rounds after ${WARMUP} warm-up, ` +
    `one chunk every ${CHUNK_INTERVAL_MS} ms, resume sent once device A had chunk ${RESUME_AT_SEQ}, ` +
    `after_seq ${AFTER_SEQ} (median ${median(rounds.map((each) => each.replayed))} chunks replayed)`,
);
console.log("| from `chat_resume` sent to, on device B | p50 ms | p99 ms |");
console.log("|---|---|---|");
const resumeRows: Array<[string, number[]]> = [
  ["first replayed chunk", rounds.map((each) => each.firstReplayed)],
  ["replay complete (last chunk device A had at the resume)", rounds.map((each) => each.replayComplete)],
  ["first live chunk (incl. wait for the model's next chunk)", rounds.map((each) => each.firstLive)],
  ["live lag: that chunk on device B − on device A", rounds.map((each) => each.liveLag)],
];
for (const [label, values] of resumeRows) {
  console.log(`| ${label} | ${ms(percentile(values, 50))} | ${ms(percentile(values, 99))} |`);
}

const byPath = (path: PathName) => long.filter((each) => each.path === path);
const totalCalls = (turn: LongTurn) => [...turn.commands.values()].reduce((sum, each) => sum + each.calls, 0);
const totalUsec = (turn: LongTurn) => [...turn.commands.values()].reduce((sum, each) => sum + each.usec, 0);
const perChunk = (path: PathName, value: (turn: LongTurn) => number) =>
  median(byPath(path).map((turn) => value(turn) / turn.chunks));
console.log(
  `\n2. one turn of ${LONG_CHUNKS} text chunks (${byPath("redis")[0]?.chunks ?? "?"} chunks in all), ` +
    `one every ${LONG_INTERVAL_MS} ms, ${LONG_REPEATS} turns per path, alternated; medians per chunk`,
);
console.log(
  "| path | Redis commands/chunk | Redis µs/chunk (commandstats) | Redis process CPU µs/chunk | bench process CPU µs/chunk | turn s |",
);
console.log("|---|---|---|---|---|---|");
const pathLabels: Record<PathName, string> = {
  redis: "resumable: Redis turn log",
  unlogged: "peer: unlogged (admit refused)",
  memory: "embedded: MemoryTurnLog (info)",
};
for (const path of ["redis", "unlogged", "memory"] as const) {
  console.log(
    `| ${pathLabels[path]} | ${perChunk(path, totalCalls).toFixed(3)} | ${perChunk(path, totalUsec).toFixed(2)} | ` +
      `${perChunk(path, (turn) => turn.redisCpuUs).toFixed(1)} | ${perChunk(path, (turn) => turn.cpuUs).toFixed(1)} | ` +
      `${(median(byPath(path).map((turn) => turn.wallMs)) / 1000).toFixed(2)} |`,
  );
}
console.log(
  `added by the Redis turn log per chunk: ${(perChunk("redis", totalCalls) - perChunk("unlogged", totalCalls)).toFixed(3)} ` +
    `commands, ${(perChunk("redis", totalUsec) - perChunk("unlogged", totalUsec)).toFixed(2)} µs in Redis (commandstats), ` +
    `${(perChunk("redis", (turn) => turn.cpuUs) - perChunk("unlogged", (turn) => turn.cpuUs)).toFixed(1)} µs CPU in this process ` +
    `(per turn: ${byPath("redis")
      .map((turn) => (turn.cpuUs / turn.chunks).toFixed(1))
      .join(", ")} vs ${byPath("unlogged")
      .map((turn) => (turn.cpuUs / turn.chunks).toFixed(1))
      .join(", ")})`,
);
const lastRedis = byPath("redis").at(-1);
const lastUnlogged = byPath("unlogged").at(-1);
if (lastRedis && lastUnlogged) {
  const names = new Set([...lastRedis.commands.keys(), ...lastUnlogged.commands.keys()]);
  const rows = [...names]
    .map((name) => ({
      name,
      redis: lastRedis.commands.get(name)?.calls ?? 0,
      unlogged: lastUnlogged.commands.get(name)?.calls ?? 0,
    }))
    .filter((row) => row.redis !== row.unlogged || row.redis >= lastRedis.chunks / 2)
    .sort((a, b) => b.redis - a.redis);
  console.log(`commands in the last turn of each (${lastRedis.chunks} chunks): resumable / unlogged`);
  console.log(rows.map((row) => `${row.name} ${row.redis} / ${row.unlogged}`).join(", "));
}

const bareMedian = (name: BareName, value: (run: (typeof bareRuns)[number]) => number) =>
  median(bareRuns.filter((run) => run.name === name).map(value));
console.log(
  `\n2b. ${APPEND_CALLS} calls, one per ~1 ms, ${LONG_REPEATS} runs each, medians; minus the empty loop ` +
    `(${bareMedian("empty", (run) => run.cpuUs).toFixed(1)} µs here, ${bareMedian("empty", (run) => run.redisCpuUs).toFixed(1)} µs Redis)`,
);
console.log("| call | CPU µs/call, this process | Redis process CPU µs/call |");
console.log("|---|---|---|");
const bareLabels: Record<Exclude<BareName, "empty">, string> = {
  append: "RedisTurnLog.append (XADD + PUBLISH)",
  xadd: "XADD alone (ioredis, the command connection)",
  publish: "PUBLISH alone (the platform bus: the same ioredis connection)",
  pipeline: "XADD + PUBLISH in one ioredis pipeline (not the code's path)",
  bun: "XADD + PUBLISH on Bun's built-in Redis client (not the code's path)",
};
for (const name of ["append", "xadd", "publish", "pipeline", "bun"] as const) {
  const cpu = bareMedian(name, (run) => run.cpuUs) - bareMedian("empty", (run) => run.cpuUs);
  const redis = bareMedian(name, (run) => run.redisCpuUs) - bareMedian("empty", (run) => run.redisCpuUs);
  console.log(`| ${bareLabels[name]} | ${cpu.toFixed(1)} | ${redis.toFixed(1)} |`);
}

const peerP50 = percentile(ttft.peer, 50);
console.log(
  `\n3. time to first token: fake model first-token delay ${FIRST_TOKEN_MS} ms, ${TTFT_ITERATIONS} turns each ` +
    `after ${TTFT_WARMUP} warm-up, interleaved in rotation`,
);
console.log(
  "| path | TTFT p50 ms | TTFT p99 ms | server-added p50 ms | server-added p99 ms | to the model's request p50 ms |",
);
console.log("|---|---|---|---|---|---|");
const ttftRows: Array<[string, "peer" | "redis" | "unlogged"]> = [
  ["peer: AI SDK provider → fake LLM", "peer"],
  ["chat over WebSocket, Redis turn log", "redis"],
  ["chat over WebSocket, unlogged", "unlogged"],
];
for (const [label, name] of ttftRows) {
  const values = ttft[name];
  const added =
    name === "peer"
      ? ["—", "—"]
      : [ms(percentile(values, 50) - peerP50), ms(percentile(values, 99) - percentile(ttft.peer, 99))];
  console.log(
    `| ${label} | ${ms(percentile(values, 50))} | ${ms(percentile(values, 99))} | ${added[0]} | ${added[1]} | ` +
      `${ms(percentile(toModel[name], 50))} |`,
  );
}

console.log(
  `turn log calls awaited before the model (admit + describe, alone): p50 ${ms(percentile(beforeModel, 50))} ms, ` +
    `p99 ${ms(percentile(beforeModel, 99))} ms`,
);

const addedTtft = percentile(ttft.redis, 50) - peerP50;
const resumeP50 = percentile(
  rounds.map((each) => each.firstReplayed),
  50,
);
console.log("\ntargets:");
console.log(`- server-added TTFT p50 with Redis < 5 ms: ${ms(addedTtft)} ms, ${addedTtft < 5 ? "met" : "NOT met"}`);
console.log(`- resume to first chunk p50 < 5 ms: ${ms(resumeP50)} ms, ${resumeP50 < 5 ? "met" : "NOT met"}`);
