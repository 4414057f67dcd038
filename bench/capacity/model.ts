// The capacity model of docs/capacity.md as a calculation: the measured costs below (bench/RESULTS.md,
// "Capacity model inputs") times an assumed activity per connected device, for 10k, 100k and 1M
// devices. Nothing is measured here; change an input and run it again: `bun bench/capacity/model.ts`.

/** Measured on the 2-core development machine, 2026-11-30 (the worse of the runs where they differ). */
const measured = {
  idle: {
    chatRssKb: 20.5, // RSS per connection at 19 900 devices (13.7-20.5 across the runs)
    chatCpuUsPerSecond: 13.5, // chat process CPU per connected device per second (leases, heartbeats)
    redisCpuUsPerSecond: 10.2, // redis-server CPU per connected device per second (lease refresh scripts)
    redisBytes: 1130, // presence lease, device slot, stream subscription
  },
  chatTurn: {
    chatCpuMs: 83.5, // a 200-word reply streamed as 206 chunks
    redisCpuUs: 12_400,
    redisBytesHeld: 14_100, // the turn log, kept CHAT_RESUME_TTL_S after the turn
    pgWriteTransactions: 3.3,
    modelRequests: 3, // the reply, the message's embedding, memory extraction
  },
  deviceCall: { callerCpuUs: 46.0, ownerCpuUs: 39.2, redisCpuUs: 18.7 },
  agentFile: { agentCpuMs: 3.94, redisCpuUs: 33, pgWriteTransactions: 1.03, deviceCalls: 4, modelRequests: 2 },
  tokenRenewal: { authCpuMs: 5.6, redisCpuUs: 153, pgWriteTransactions: 1.0 },
  postgres: { writeTransactionsPerSecond: 2632 }, // pgbench -N, synchronous_commit on, on this machine
};

/** The same idle device with DEVICE_LEASE_TTL_MS=30000 (a lease refresh every 10 s instead of 3.3 s). */
const idleWithLease30s = { chatRssKb: 12.6, chatCpuUsPerSecond: 9.0, redisCpuUsPerSecond: 3.4, redisBytes: 1130 };

/** Assumptions, per connected device in the busy hour. */
const activity = {
  chatTurnsPerHour: 2,
  deviceCallsPerHour: 10, // besides the agent's own (below): chat tool calls, other services' calls
  agentFilesPerHour: 5,
  tokenRenewalsPerHour: 3600 / 840, // 15-minute tokens renewed a minute before they end
  chatResumeTtlS: 600, // CHAT_RESUME_TTL_S
};
/** How busy a process may run: room for peaks, GC and latency. */
const TARGET_UTILISATION = 0.7;
/**
 * Chat replicas run at half a core: at 66-81% busy the benchmark's first chunks came 0.2-0.35 s
 * after the model's first token, against milliseconds when the replica is lightly loaded.
 */
const CHAT_TARGET_UTILISATION = 0.5;
const VPS = { vcpus: 4, memoryGb: 8, monthlyUsd: 20 };
/** PostgreSQL on a server of its own past 100k devices (assumed price, 8 vCPU / 32 GB / NVMe). */
const DATABASE_SERVER_MONTHLY_USD = 100;

const perSecond = (perHour: number) => perHour / 3600;

function load(devices: number, idle = measured.idle) {
  const turns = devices * perSecond(activity.chatTurnsPerHour);
  const files = devices * perSecond(activity.agentFilesPerHour);
  const calls = devices * perSecond(activity.deviceCallsPerHour) + files * measured.agentFile.deviceCalls;
  const renewals = devices * perSecond(activity.tokenRenewalsPerHour);
  const m = { ...measured, idle };
  // Cores: CPU seconds per second. The chat tool calls' caller is chat; the agent's calls' caller is agent.
  const chatByUse = {
    idle: (devices * m.idle.chatCpuUsPerSecond) / 1e6,
    turns: (turns * m.chatTurn.chatCpuMs * 1000) / 1e6,
    deviceCalls:
      (calls * m.deviceCall.ownerCpuUs + devices * perSecond(activity.deviceCallsPerHour) * m.deviceCall.callerCpuUs) /
      1e6,
  };
  const chatCores = chatByUse.idle + chatByUse.turns + chatByUse.deviceCalls;
  const agentCores =
    (files * m.agentFile.agentCpuMs * 1000 + files * m.agentFile.deviceCalls * m.deviceCall.callerCpuUs) / 1e6;
  const authCores = (renewals * m.tokenRenewal.authCpuMs * 1000) / 1e6;
  const redisByUse = {
    presence: (devices * m.idle.redisCpuUsPerSecond) / 1e6,
    chatTurns: (turns * m.chatTurn.redisCpuUs) / 1e6,
    deviceCalls: (calls * m.deviceCall.redisCpuUs) / 1e6,
    agentFiles: (files * m.agentFile.redisCpuUs) / 1e6,
    renewals: (renewals * m.tokenRenewal.redisCpuUs) / 1e6,
  };
  const redisCores = Object.values(redisByUse).reduce((sum, cores) => sum + cores, 0);
  const redisMemoryMb =
    (devices * m.idle.redisBytes + turns * activity.chatResumeTtlS * m.chatTurn.redisBytesHeld) / 2 ** 20;
  const pgWrites =
    turns * m.chatTurn.pgWriteTransactions +
    files * m.agentFile.pgWriteTransactions +
    renewals * m.tokenRenewal.pgWriteTransactions;
  const chatMemoryGb = (devices * m.idle.chatRssKb) / 2 ** 20;
  return {
    turns,
    files,
    calls,
    renewals,
    chatByUse,
    chatCores,
    agentCores,
    authCores,
    redisByUse,
    redisCores,
    redisMemoryMb,
    pgWrites,
    pgShare: pgWrites / m.postgres.writeTransactionsPerSecond,
    modelRequests: turns * m.chatTurn.modelRequests + files * m.agentFile.modelRequests,
    chatMemoryGb,
  };
}

/** Replicas at the target utilisation, one core each at most (one JS thread), and a floor for availability. */
const replicas = (cores: number, floor: number, target = TARGET_UTILISATION) =>
  Math.max(floor, Math.ceil(cores / target));

const fmt = (value: number, digits = 1) =>
  value >= 100 ? Math.round(value).toLocaleString("en") : value.toFixed(digits);

function report(title: string, idle: typeof measured.idle) {
  const rows: string[][] = [];
  const uses: string[] = [];
  for (const devices of [10_000, 100_000, 1_000_000]) {
    const l = load(devices, idle);
    const chat = replicas(l.chatCores, 2, CHAT_TARGET_UTILISATION);
    const agent = replicas(l.agentCores, 1);
    const auth = replicas(l.authCores, 2);
    // One Redis process runs commands on one thread: shards at the target utilisation.
    const shards = Math.max(1, Math.ceil(l.redisCores / TARGET_UTILISATION));
    // Cores to rent: the services' work at their target utilisation, one core for billing, storage,
    // Qdrant and the proxy; Redis: one node's work at the target, or past one node a core for each
    // shard and each shard's replica; PostgreSQL: the shipped container's one core up to 100k devices,
    // then a server of its own.
    const dedicatedDatabase = devices > 100_000;
    const rented =
      l.chatCores / CHAT_TARGET_UTILISATION +
      (l.agentCores + l.authCores) / TARGET_UTILISATION +
      1 +
      (shards === 1 ? l.redisCores / TARGET_UTILISATION : shards * 2) +
      (dedicatedDatabase ? 0 : 1);
    const vps = Math.ceil(rented / VPS.vcpus);
    const cost = vps * VPS.monthlyUsd + (dedicatedDatabase ? DATABASE_SERVER_MONTHLY_USD : 0);
    rows.push([
      devices.toLocaleString("en"),
      `${fmt(l.turns)} / ${fmt(l.calls)} / ${fmt(l.files)} / ${fmt(l.renewals)}`,
      `${fmt(l.chatCores, 2)} (${chat}, ${fmt(devices / chat, 0)} devices each)`,
      `${fmt(l.agentCores, 2)} (${agent})`,
      `${fmt(l.authCores, 2)} (${auth})`,
      `${fmt(l.redisCores, 2)} (${shards})`,
      `${fmt(l.redisMemoryMb, 0)}`,
      `${fmt(l.chatMemoryGb, 2)}`,
      `${fmt(l.pgWrites, 0)} (${(l.pgShare * 100).toFixed(0)}%)`,
      fmt(l.modelRequests, 0),
      `${vps}${dedicatedDatabase ? " + DB" : ""}`,
      `$${cost.toLocaleString("en")}`,
      `${fmt(rented, 1)}`,
    ]);
    const c = l.chatByUse;
    const r = l.redisByUse;
    uses.push(
      `| ${devices.toLocaleString("en")} | ${fmt(c.idle, 2)} / ${fmt(c.turns, 2)} / ${fmt(c.deviceCalls, 2)} | ` +
        `${fmt(r.presence, 2)} / ${fmt(r.chatTurns, 2)} / ${fmt(r.deviceCalls, 2)} / ${fmt(r.agentFiles, 2)} / ${fmt(r.renewals, 2)} |`,
    );
  }
  console.log(`\n${title}\n`);
  console.log(
    "| devices | turns / device calls / agent files / renewals per s | chat cores (replicas) | agent cores (replicas) | auth cores (replicas) | Redis cores (shards) | Redis MiB | chat GiB (connections) | PG write tx/s (of measured max) | model requests/s | VPS | $/month | cores rented |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  console.log(
    "\n| devices | chat cores: idle devices / turns / device calls | Redis cores: presence / chat turns / device calls / agent files / renewals |",
  );
  console.log("|---|---|---|");
  for (const line of uses) console.log(line);
}

report("as configured (DEVICE_LEASE_TTL_MS=10000)", measured.idle);
report("with DEVICE_LEASE_TTL_MS=30000", idleWithLease30s);
