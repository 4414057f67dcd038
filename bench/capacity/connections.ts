// Idle device connections on one chat instance, up to as many as the process's open-file limit
// allows, and what holding them costs per second.
//
// The server is bench/capacity/connection-server.ts (the chat service alone in its process, built as
// bench/connections/server.ts builds it, memory read after a full GC) on a private redis-server and
// a fresh database; DEVICE_LEASE_TTL_MS, DEVICE_HEARTBEAT_S and DEVICE_INSTANCE_TTL_MS in this
// process's environment are passed on to it (defaults: 10 000 ms, 15 s, 5000 ms). Every device is its own user (so
// each holds a presence lease and a `stream:{user}` subscription), authenticates with `hello`, and
// sends the SDK's heartbeat; devices live in CLIENT_PROCESSES processes of their own. At each
// checkpoint (5000, 10 000, then the most the server's file limit allows): the server's RSS and JS
// heap per connection, Redis memory per connection, then, over IDLE_S seconds of idling, CPU of the
// server and of redis-server and Redis commands per connection per second (lease refreshes,
// heartbeats).
// `bun bench/capacity/connections.ts [checkpoints, default 5000,10000,max] [idle seconds, default 20]`
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createTestDatabase, randomSuffix, signTestToken, testKeys } from "../../src/shared/testing";
import { commandsPer, fileDescriptors, JsonLines, type PrivateRedis, processCpuUs, startPrivateRedis } from "./shared";

const CLIENT_PROCESSES = 4;
const SETTLE_MS = 5000;
// Files the server may still open past the devices (PostgreSQL pool, Redis reconnects, logs).
const FD_MARGIN = 40;
const IDLE_S = Number(process.argv[3] ?? 20);

interface Row {
  devices: number;
  connectSeconds: number;
  rss: number;
  heapUsed: number;
  redisMemory: number;
  serverCpuUsPerDeviceSecond: number;
  redisCpuUsPerDeviceSecond: number;
  redisCommandsPerDeviceSecond: number;
  commands: Record<string, number>;
  /** Redis's own execution time of one lease refresh script (commandstats), in µs. */
  scriptExecUs: number;
  closedByServer: number;
  refusedUpgrades: number;
}

type Child = Bun.Subprocess<"pipe", "pipe", "inherit">;

async function measure(redis: PrivateRedis, databaseUrl: string, workDir: string, children: Child[]) {
  const keys = await testKeys();
  const server = Bun.spawn(["bun", `${import.meta.dir}/connection-server.ts`, `bench:${randomSuffix()}`], {
    env: { ...process.env, BENCH_PUBLIC_PEM: keys.publicPem, REDIS_URL: redis.url, DATABASE_URL: databaseUrl },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  children.push(server);
  const serverLines = new JsonLines(server.stdout);
  const { port } = await serverLines.next<{ port: number }>();
  const measureServer = async () => {
    server.stdin.write("measure\n");
    server.stdin.flush();
    return serverLines.next<{ rss: number; heapUsed: number }>();
  };

  const files = fileDescriptors(server.pid);
  const most = Math.floor((files.hardLimit - files.open - FD_MARGIN) / 100) * 100;
  const checkpoints = (process.argv[2] ?? "5000,10000,max")
    .split(",")
    .map((value) => (value === "max" ? most : Math.min(most, Number(value))));
  const total = Math.max(...checkpoints);
  console.error(
    `server: open files hard limit ${files.hardLimit}, ${files.open} open before any device; most: ${most}`,
  );

  // Access tokens live at most 15 minutes (the verifier refuses longer ones): signed just before use.
  console.error(`signing ${total} tokens`);
  const tokens: string[] = [];
  for (let i = 0; i < total; i++) tokens.push(await signTestToken(`idle-${i}`, "free"));
  const tokenFile = `${workDir}/tokens.json`;
  writeFileSync(tokenFile, JSON.stringify(tokens));
  const share = Math.ceil(total / CLIENT_PROCESSES);
  const clients: Array<{ child: Child; lines: JsonLines }> = [];
  for (let n = 0; n < CLIENT_PROCESSES; n++) {
    const child = Bun.spawn(
      ["bun", `${import.meta.dir}/connection-clients.ts`, String(port), tokenFile, String(n * share), String(share)],
      { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
    );
    children.push(child);
    const lines = new JsonLines(child.stdout);
    await lines.next();
    clients.push({ child, lines });
  }

  const baseline = { ...(await measureServer()), redisMemory: await redis.usedMemory() };
  const rows: Row[] = [];
  for (const devices of checkpoints) {
    const started = performance.now();
    const answers = await Promise.all(
      clients.map(async ({ child, lines }, n) => {
        child.stdin.write(`hold ${Math.max(0, Math.min(share, devices - n * share))}\n`);
        child.stdin.flush();
        return lines.next<{ holding: number; closedByServer?: number; refusedUpgrades?: number; error?: string }>();
      }),
    );
    const failed = answers.find((answer) => answer.error);
    if (failed) throw new Error(`at ${devices} devices: ${failed.error}`);
    const connectSeconds = (performance.now() - started) / 1000;
    await Bun.sleep(SETTLE_MS);
    const memory = await measureServer();
    const redisMemory = await redis.usedMemory();
    // The idle window: heartbeats arrive, leases are refreshed, nothing else happens.
    await Bun.sleep(2000);
    const before = {
      server: processCpuUs(server.pid),
      redis: processCpuUs(redis.pid),
      commands: await redis.commands(),
      at: performance.now(),
    };
    await Bun.sleep(IDLE_S * 1000);
    const seconds = (performance.now() - before.at) / 1000;
    const commands = commandsPer(before.commands, await redis.commands(), devices * seconds);
    const row: Row = {
      devices,
      connectSeconds,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      redisMemory,
      serverCpuUsPerDeviceSecond: (processCpuUs(server.pid) - before.server) / (devices * seconds),
      redisCpuUsPerDeviceSecond: (processCpuUs(redis.pid) - before.redis) / (devices * seconds),
      redisCommandsPerDeviceSecond: commands.calls,
      commands: commands.byCommand,
      scriptExecUs: (commands.usecByCommand.evalsha ?? 0) / (commands.byCommand.evalsha ?? 1),
      closedByServer: answers.reduce((sum, answer) => sum + (answer.closedByServer ?? 0), 0),
      refusedUpgrades: answers.reduce((sum, answer) => sum + (answer.refusedUpgrades ?? 0), 0),
    };
    rows.push(row);
    console.error(JSON.stringify(row));
  }
  const atMost = fileDescriptors(server.pid).open;
  for (const { child } of clients) {
    child.stdin.write("close\n");
    child.stdin.flush();
  }
  await Promise.all(clients.map(({ child }) => child.exited));
  server.kill();
  await server.exited;
  return { rows, baseline, files, atMost, total };
}

function report({ rows, baseline, files, atMost, total }: Awaited<ReturnType<typeof measure>>) {
  const kb = (bytes: number) => (bytes / 1024).toFixed(2);
  const settings = ["DEVICE_LEASE_TTL_MS", "DEVICE_HEARTBEAT_S", "DEVICE_INSTANCE_TTL_MS"]
    .map((name) => `${name}=${process.env[name] ?? "default"}`)
    .join(", ");
  console.log(
    `idle authenticated devices on one chat instance (Bun ${Bun.version}; ${settings}); server open files: hard limit ` +
      `${files.hardLimit}, ${files.open} before any device, ${atMost} at ${total} devices; idle window ${IDLE_S} s`,
  );
  console.log(
    "\n| devices | connect s | RSS KB/conn | JS heap KB/conn | RSS KB/conn since previous | Redis bytes/conn | conns per GB (RSS) |",
  );
  console.log("|---|---|---|---|---|---|---|");
  let previous = { devices: 0, rss: baseline.rss };
  for (const row of rows) {
    const perConnection = (row.rss - baseline.rss) / row.devices;
    const sincePrevious = (row.rss - previous.rss) / (row.devices - previous.devices);
    const redisBytes = Math.round((row.redisMemory - baseline.redisMemory) / row.devices);
    console.log(
      `| ${row.devices} | ${row.connectSeconds.toFixed(1)} | ${kb(perConnection)} | ${kb((row.heapUsed - baseline.heapUsed) / row.devices)} | ${kb(sincePrevious)} | ${redisBytes} | ${Math.round(2 ** 30 / perConnection)} |`,
    );
    previous = row;
  }
  console.log(
    `\nbaseline (no device): RSS ${(baseline.rss / 2 ** 20).toFixed(1)} MiB, heap ${(baseline.heapUsed / 2 ** 20).toFixed(1)} MiB`,
  );
  console.log(
    "\n| devices | server CPU µs/device/s | redis-server CPU µs/device/s | scripts (EVALSHA)/device/s | Redis exec µs/script | Redis commands, scripts' included/device/s | closed by server | upgrades refused (429, retried) |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const row of rows) {
    console.log(
      `| ${row.devices} | ${row.serverCpuUsPerDeviceSecond.toFixed(2)} | ${row.redisCpuUsPerDeviceSecond.toFixed(2)} | ${(row.commands.evalsha ?? 0).toFixed(3)} | ${row.scriptExecUs.toFixed(1)} | ${row.redisCommandsPerDeviceSecond.toFixed(3)} | ${row.closedByServer} | ${row.refusedUpgrades} |`,
    );
  }
  // commandstats counts the commands a script runs under their own names as well as the script.
  console.log("\nRedis commands per device per second, by command, scripts' own included (largest checkpoint):");
  console.log(JSON.stringify(rows.at(-1)?.commands));
}

const redis = await startPrivateRedis();
// The chat service migrates its schema at start: into a database of its own, dropped at the end.
const database = await createTestDatabase();
const workDir = mkdtempSync(`${tmpdir()}/capacity-connections-`);
const children: Child[] = [];
try {
  report(await measure(redis, database.url, workDir, children));
} finally {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(children.map((child) => child.exited));
  await redis.stop();
  await database.drop();
  rmSync(workDir, { recursive: true, force: true });
}
process.exit(0);
