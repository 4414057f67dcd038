// Device calls: what one cross-instance tool call costs Redis, beside the caller and the owner.
//
// The adiuva half of bench/device-rpc's throughput phase (caller in this process, the chat instance
// holding the device's socket in another: bench/device-rpc/node-a.ts, the device answering at once
// in that process), on a private redis-server so its CPU and command counts are the calls' alone.
// CALLS calls with IN_FLIGHT in flight after a warm-up, ROUNDS rounds: calls/s, CPU per call of the
// caller, of node A and of redis-server (utime + stime from /proc), Redis commands per call
// (those a script runs counted too).
// `bun bench/capacity/device-calls.ts [calls=60000] [rounds=3]`
import { commandsPer, median, processCpuUs, startPrivateRedis } from "./shared";

const CALLS = Number(process.argv[2] ?? 60_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const IN_FLIGHT = 2000;
const WARMUP = 2000;

const redis = await startPrivateRedis();
// The benchmark helpers take Redis and PostgreSQL from the environment when they are loaded; node A
// migrates the chat schema at start, into a database of its own.
process.env.REDIS_URL = redis.url;
const { createTestDatabase, randomSuffix, signTestToken, testKeys } = await import("../../src/shared/testing");
const database = await createTestDatabase();
process.env.DATABASE_URL = database.url;
const { benchPlatform, readLine } = await import("../device-rpc/shared");
const { createDeviceRpcClient } = await import("../../src/shared/device-rpc/client");
const { closePlatform } = await import("../../src/shared/platform");

async function round() {
  const keys = await testKeys();
  const userId = `bench-${randomSuffix()}`;
  const keyPrefix = `bench:${randomSuffix()}`;
  const nodeA = Bun.spawn(["bun", `${import.meta.dir}/../device-rpc/node-a.ts`, "adiuva", keyPrefix], {
    env: {
      ...process.env,
      BENCH_PUBLIC_PEM: keys.publicPem,
      BENCH_TOKEN: await signTestToken(userId, "pro"),
      BENCH_USER: userId,
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    await readLine(nodeA.stdout);
    const platform = benchPlatform({ keyPrefix, publicPem: keys.publicPem, service: "agent" });
    const rpc = createDeviceRpcClient(platform);
    await rpc.start();
    const call = () => rpc.call({ userId, name: "task_list", args: { n: 1 } });
    for (let i = 0; i < WARMUP; i++) await call();
    const before = {
      caller: processCpuUs(process.pid),
      owner: processCpuUs(nodeA.pid),
      redis: processCpuUs(redis.pid),
      commands: await redis.commands(),
      at: performance.now(),
    };
    let started = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (started < CALLS) {
          started += 1;
          await call();
        }
      }),
    );
    const seconds = (performance.now() - before.at) / 1000;
    const result = {
      callsPerSecond: CALLS / seconds,
      callerUs: (processCpuUs(process.pid) - before.caller) / CALLS,
      ownerUs: (processCpuUs(nodeA.pid) - before.owner) / CALLS,
      redisUs: (processCpuUs(redis.pid) - before.redis) / CALLS,
      commands: commandsPer(before.commands, await redis.commands(), CALLS),
    };
    await rpc.stop();
    await closePlatform(platform);
    return result;
  } finally {
    nodeA.kill();
    await nodeA.exited;
  }
}

try {
  const rounds: Array<Awaited<ReturnType<typeof round>>> = [];
  for (let n = 0; n < ROUNDS; n++) {
    rounds.push(await round());
    console.error(JSON.stringify(rounds.at(-1)));
  }
  console.log(`device calls: ${CALLS} calls, ${IN_FLIGHT} in flight, ${ROUNDS} rounds (Bun ${Bun.version})\n`);
  console.log(
    "| round | calls/s | CPU µs/call caller | CPU µs/call node A | redis-server CPU µs/call | Redis commands/call |",
  );
  console.log("|---|---|---|---|---|---|");
  rounds.forEach((r, n) => {
    console.log(
      `| ${n + 1} | ${r.callsPerSecond.toFixed(0)} | ${r.callerUs.toFixed(1)} | ${r.ownerUs.toFixed(1)} | ${r.redisUs.toFixed(1)} | ${r.commands.calls.toFixed(2)} |`,
    );
  });
  const m = (pick: (r: (typeof rounds)[number]) => number, digits = 1) => median(rounds.map(pick)).toFixed(digits);
  console.log(
    `| median | ${m((r) => r.callsPerSecond, 0)} | ${m((r) => r.callerUs)} | ${m((r) => r.ownerUs)} | ${m((r) => r.redisUs)} | ${m((r) => r.commands.calls, 2)} |`,
  );
  console.log(
    `\nRedis by command, scripts' own included (last round): ${JSON.stringify(rounds.at(-1)?.commands.byCommand)}`,
  );
} finally {
  await redis.stop();
  await database.drop();
}
process.exit(0);
