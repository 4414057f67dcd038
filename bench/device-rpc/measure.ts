// The measurement both device RPC benchmarks share: sequential latency, then throughput with many
// calls in flight, and the CPU time each process spends per call during the throughput phase.
import { percentile } from "./shared";

export type Call = () => Promise<unknown>;

export interface Workload {
  sequential: number;
  total: number;
  inFlight: number;
  warmup: number;
}

export interface Result {
  p50: number;
  p99: number;
  throughput: number;
  /** Redis commands per call during the sequential phase (when a counter is given). */
  commandsPerCall: number;
  /** The same during the throughput phase, where a turn's messages may travel together. */
  commandsPerCallInFlight: number;
  subscribes: number;
  /** CPU time per call during the throughput phase, in µs: the calling process and node A. */
  callerCpuUs: number;
  ownerCpuUs: number;
}

/** Redis's own command counts (INFO commandstats), summed over the nodes the counter reads. */
export type CommandCounter = () => Promise<{ total: number; subscribes: number }>;

/** CPU time (user + system) of a process so far, in µs, from /proc (Linux). */
export async function processCpuUs(pid: number): Promise<number> {
  const fields = (await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Parses INFO commandstats: every command but INFO itself, and the SUBSCRIBE family apart. */
export function countCommands(info: string): { total: number; subscribes: number } {
  let total = 0;
  let subscribes = 0;
  for (const line of info.split("\n")) {
    const match = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line);
    if (!match) continue;
    if (match[1] !== "info") total += Number(match[2]);
    if (match[1]?.includes("subscribe")) subscribes += Number(match[2]);
  }
  return { total, subscribes };
}

export async function measure(
  name: string,
  call: Call,
  ownerPid: number,
  workload: Workload,
  counter?: CommandCounter,
): Promise<Result> {
  console.error(`${name}: warming up`);
  for (let i = 0; i < workload.warmup; i++) await call();
  console.error(`${name}: sequential`);
  const before = await counter?.();
  const latencies: number[] = [];
  for (let i = 0; i < workload.sequential; i++) {
    const started = performance.now();
    await call();
    latencies.push(performance.now() - started);
  }
  const after = await counter?.();
  latencies.sort((x, y) => x - y);
  console.error(`${name}: throughput`);
  let started = 0;
  const inFlightBefore = await counter?.();
  const cpuBefore = await Promise.all([processCpuUs(process.pid), processCpuUs(ownerPid)]);
  const begin = performance.now();
  const worker = async () => {
    while (started < workload.total) {
      started += 1;
      await call();
    }
  };
  await Promise.all(Array.from({ length: workload.inFlight }, worker));
  const seconds = (performance.now() - begin) / 1000;
  const cpuAfter = await Promise.all([processCpuUs(process.pid), processCpuUs(ownerPid)]);
  const inFlightAfter = await counter?.();
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    throughput: workload.total / seconds,
    // Minus the one INFO call that ends the window (INFO itself is not counted).
    commandsPerCall: before && after ? (after.total - before.total) / workload.sequential : Number.NaN,
    commandsPerCallInFlight:
      inFlightBefore && inFlightAfter ? (inFlightAfter.total - inFlightBefore.total) / workload.total : Number.NaN,
    subscribes: before && after ? after.subscribes - before.subscribes : Number.NaN,
    callerCpuUs: (cpuAfter[0]! - cpuBefore[0]!) / workload.total,
    ownerCpuUs: (cpuAfter[1]! - cpuBefore[1]!) / workload.total,
  };
}
