// The services through a Sentinel failover, under load: a real Sentinel group (master, replica,
// three sentinels; src/shared/testing/redis-servers.ts) and every service on it, in process. While
// device calls, agent runs, a rate-limited route and tier changes are under way, SENTINEL FAILOVER
// promotes the replica; no service is restarted. What each scenario must show is in
// redis-failover-world.ts (`failoverChecks`). Skipped, with its reason, without redis-server.
import { afterAll, beforeAll, describe } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import {
  type RedisSentinelHandle,
  redisBinariesAvailable,
  startRedisSentinel,
} from "../../src/shared/testing/redis-servers";
import {
  type FailoverWorld,
  failoverChecks,
  runThroughSwitch,
  type SwitchRecord,
  startFailoverWorld,
  timed,
} from "./redis-failover-world";

const available = redisBinariesAvailable();
if (!available.sentinel) console.log(`skipped: ${available.reason}`);
const skipped = available.sentinel ? "" : ` (skipped: ${available.reason})`;

describe.skipIf(!available.sentinel)(`services through a Sentinel failover${skipped}`, () => {
  let sentinel: RedisSentinelHandle | undefined;
  let ctx: TestContext | undefined;
  let world: FailoverWorld;
  let record: SwitchRecord;

  beforeAll(async () => {
    const handle = await timed("sentinel group started", () => startRedisSentinel());
    sentinel = handle;
    const context = await createTestContext();
    ctx = context;
    world = await timed("services started", () => startFailoverWorld(context, { redisEnv: handle.env }));
    record = await runThroughSwitch(world, () => timed("SENTINEL FAILOVER", () => handle.failover()), {
      // ioredis hears +switch-master from the sentinels (failoverDetector) and reconnects at once.
      settleMs: 2000,
      // Past the old master's demotion (Sentinel's 8 s grace): a connection left on it would show.
      trafficAfterMs: 12_000,
    });
  }, 120_000);
  afterAll(async () => {
    await ctx?.close();
    await sentinel?.stop();
  });

  failoverChecks(() => ({ world, record }));
});
