// `bun bench/rate-limit`: checks per second and p50/p99 latency of our GCRA Lua limiter against
// rate-limiter-flexible's RateLimiterRedis on the same Redis, in one run (REDIS_URL, default local).
import { cpus } from "node:os";
import { Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { MemoryRateLimiter, RedisRateLimiter } from "../../src/shared/rate-limit";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const USERS = 1000;
const prefix = `bench:rl:${crypto.randomUUID().slice(0, 8)}`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
// A limit no run reaches: every check does the full work of an admitted request.
const rule = { limit: 1_000_000, windowMs: 60_000 };

const ours = new RedisRateLimiter(redis);
const memory = new MemoryRateLimiter();
const flexible = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: `${prefix}:flex`,
  points: rule.limit,
  duration: rule.windowMs / 1000,
});

type Check = (user: number) => Promise<unknown>;
const candidates: Array<[string, Check]> = [
  ["ours: GCRA Lua on Redis TIME", (user) => ours.check(`${prefix}:ours:${user}`, rule)],
  ["rate-limiter-flexible 11.4.0 RateLimiterRedis", (user) => flexible.consume(`u${user}`)],
  ["ours: in-process (embedded / fallback)", (user) => memory.check(`${prefix}:mem:${user}`, rule)],
];

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function run(check: Check, inFlight: number) {
  for (let i = 0; i < 500; i++) await check(i % USERS);
  const latencies: number[] = [];
  let next = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const started = performance.now();
      await check(next++ % USERS);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

console.log(
  `Bun ${Bun.version}, ${cpus().length} cores, one local Redis, ${SECONDS}s per cell, ${new Date().toISOString().slice(0, 10)}`,
);
console.log("| limiter | in flight | checks/s | p50 ms | p99 ms |");
console.log("|---|---:|---:|---:|---:|");
const results = new Map<string, Awaited<ReturnType<typeof run>>>();
// Two rounds in alternating order; each cell keeps its better round, so warm-up and ordering
// effects do not favour whoever runs second.
for (const inFlight of [1, 64]) {
  for (const [name, check] of candidates) {
    const first = await run(check, inFlight);
    const second = await run(check, inFlight);
    const result = first.perSecond >= second.perSecond ? first : second;
    results.set(`${name}@${inFlight}`, result);
    console.log(
      `| ${name} | ${inFlight} | ${Math.round(result.perSecond)} | ${result.p50.toFixed(3)} | ${result.p99.toFixed(3)} |`,
    );
  }
}
for (const inFlight of [1, 64]) {
  const a = results.get(`${candidates[0]![0]}@${inFlight}`)!;
  const b = results.get(`${candidates[1]![0]}@${inFlight}`)!;
  console.log(
    `ours vs rate-limiter-flexible, ${inFlight} in flight: checks/s ${(a.perSecond / b.perSecond).toFixed(2)}x, p50 ${(a.p50 / b.p50).toFixed(2)}x, p99 ${(a.p99 / b.p99).toFixed(2)}x`,
  );
}
let cursor = "0";
do {
  const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
  cursor = nextCursor;
  if (keys.length > 0) await redis.unlink(...keys);
} while (cursor !== "0");
for (const key of await redis.keys("rlflx:*")) await redis.unlink(key);
redis.disconnect();
