// How many small write transactions this machine's PostgreSQL commits per second: `pgbench -N`
// (each transaction one UPDATE, one SELECT and one INSERT, as small as the services' own), on a
// fresh database dropped at the end, with synchronous_commit on (the default, what chat and auth
// use) and off (what the agent's per-file bookkeeping sets). PostgreSQL shares the machine with
// everything else running on it, so this is what it gives here, not what a dedicated server would.
// `bun bench/capacity/pg-commits.ts [seconds=20] [clients=8]`
import { createTestDatabase } from "../../src/shared/testing";

const SECONDS = Number(process.argv[2] ?? 20);
const CLIENTS = Number(process.argv[3] ?? 8);

function pgbench(url: string, args: string[], options: Record<string, string> = {}): string {
  const { hostname, port, username, pathname } = new URL(url);
  const result = Bun.spawnSync(
    ["pgbench", "-h", hostname, "-p", port || "5432", "-U", username, ...args, pathname.slice(1)],
    { env: { ...process.env, ...options }, stdout: "pipe", stderr: "pipe" },
  );
  if (result.exitCode !== 0) throw new Error(`pgbench ${args.join(" ")}: ${result.stderr.toString()}`);
  return result.stdout.toString();
}

const database = await createTestDatabase();
try {
  pgbench(database.url, ["-i", "-s", "10", "-q"]);
  console.log(`pgbench -N, ${CLIENTS} clients, ${SECONDS} s per row (Bun ${Bun.version})\n`);
  console.log("| synchronous_commit | write transactions/s | mean latency ms |");
  console.log("|---|---|---|");
  for (const setting of ["on", "off"]) {
    const output = pgbench(database.url, ["-N", "-c", String(CLIENTS), "-j", "2", "-T", String(SECONDS)], {
      PGOPTIONS: `-c synchronous_commit=${setting}`,
    });
    const tps = /tps = ([\d.]+)/.exec(output)?.[1];
    const latency = /latency average = ([\d.]+) ms/.exec(output)?.[1];
    console.log(`| ${setting} | ${Number(tps).toFixed(0)} | ${latency} |`);
  }
} finally {
  await database.drop();
}
process.exit(0);
