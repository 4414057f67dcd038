// Where a device call's CPU goes on one Redis node: the caller here and node A (chat instance and
// device, node-a.ts) in another process, a fixed number of calls with 2000 in flight, then the CPU
// time per call of each process. `PROFILE=1` also writes both processes' CPU profiles (Bun's
// --cpu-prof) to /tmp/device-rpc-profile, to read in Chrome's DevTools.
// Usage: [PROFILE=1] bun bench/device-rpc/profile.ts [calls]
import { createDeviceRpcClient } from "../../src/shared/device-rpc/client";
import { deleteKeysWithPrefix, randomSuffix, signTestToken, testKeys } from "../../src/shared/testing";
import { processCpuUs } from "./measure";
import { benchPlatform, REDIS_URL, readLine } from "./shared";

const TOTAL = Number(process.argv[2] ?? 200_000);
const IN_FLIGHT = 2000;
const WARMUP = 2000;
const PROFILE_DIR = "/tmp/device-rpc-profile";

const keys = await testKeys();
const userId = `bench-${randomSuffix()}`;
const keyPrefix = `bench:${randomSuffix()}`;
const env = {
  ...process.env,
  BENCH_PUBLIC_PEM: keys.publicPem,
  BENCH_TOKEN: await signTestToken(userId, "pro"),
  BENCH_USER: userId,
  REDIS_URL,
};
const profile = process.env.PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] : [];
const nodeA = Bun.spawn(["bun", ...profile, `${import.meta.dir}/node-a.ts`, "adiuva", keyPrefix], {
  env,
  stdout: "pipe",
  stderr: "inherit",
});
process.on("exit", () => nodeA.kill());
await readLine(nodeA.stdout);
const platform = benchPlatform({ keyPrefix, publicPem: keys.publicPem, service: "agent", redis: { REDIS_URL } });
const rpc = createDeviceRpcClient(platform);
await rpc.start();
const call = () => rpc.call({ userId, name: "task_list", args: { n: 1 } });
for (let i = 0; i < WARMUP; i++) await call();

const cpuBefore = await Promise.all([processCpuUs(process.pid), processCpuUs(nodeA.pid)]);
const began = performance.now();
let started = 0;
const worker = async () => {
  while (started < TOTAL) {
    started += 1;
    await call();
  }
};
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
const seconds = (performance.now() - began) / 1000;
const cpuAfter = await Promise.all([processCpuUs(process.pid), processCpuUs(nodeA.pid)]);
const perCall = (index: number) => ((cpuAfter[index]! - cpuBefore[index]!) / TOTAL).toFixed(1);
console.log(
  `${TOTAL} calls, ${IN_FLIGHT} in flight: ${Math.round(TOTAL / seconds)} calls/s; CPU per call: caller ${perCall(0)} µs, node A ${perCall(1)} µs`,
);
await rpc.stop();
nodeA.kill("SIGTERM");
await nodeA.exited;
await deleteKeysWithPrefix("bench");
if (profile.length > 0) console.log(`node A's profile is in ${PROFILE_DIR}; run with --cpu-prof for the caller's`);
process.exit(0);
