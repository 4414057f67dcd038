// What the Redis failover tests put through one master switch, all at once and on real services
// (in-process instances, each with its own platform and Redis connections, as replicas run):
//
// - device calls: a device connected to chat instance A, called through chat instance B without
//   pause (fast calls, and slow ones the device answers after a while, so some are in flight);
// - agent runs: runs triggered before the switch on an agent replica, working through a device on A;
// - a rate-limited route (chat's GET /conversations): users hammering it through A and B;
// - tier changes: Stripe webhooks to billing, whose outbox relay appends to the stream auth consumes.
//
// Every instance is pointed at the topology under test (Sentinel or Cluster) and none is restarted.
// Times are performance.now() of this process, where every service runs, so calls, responses and
// the switch are on one clock.
import { expect, test } from "bun:test";
import { inArray } from "drizzle-orm";
import postgres from "postgres";
import { isTerminal } from "../../src/agent/model";
import { agentRunLogs } from "../../src/agent/tables";
import { createBillingService } from "../../src/billing";
import { DeviceCallError } from "../../src/shared/device-rpc";
import { createKeys, type Keys } from "../../src/shared/keys";
import { eventually, type TestContext } from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import { trigger } from "../agent/support/agents";
import { createStore, sampleFiles } from "../agent/support/device-files";
import { api } from "../agent/support/http";
import { connectStoreDevice, createWorld } from "../agent/support/world";
import { registerUser, startAuth } from "../auth/helpers";
import { billingEnv, WEBHOOK_SECRET } from "../billing/harness";
import { type ChatInstance, connectDevice, startChat } from "../chat/gateway/helpers";

/** Points a service at the topology under test, whatever topology the rest of the suite uses. */
export function topologyEnv(env: Record<string, string>): Record<string, string> {
  return { REDIS_URL: "", REDIS_SENTINELS: "", REDIS_SENTINEL_NAME: "", REDIS_CLUSTER_NODES: "", ...env };
}

/** The failure codes of a device call that say what happened to the way to the device. */
export const TRANSPORT_CODES = ["rpc_unavailable", "deadline_exceeded", "device_disconnected", "device_offline"];

/** How long past its deadline a call may take to settle before it counts as hung. */
export const DEADLINE_SLACK_MS = 500;

export interface Window {
  startedAt: number;
  endedAt: number;
}

export const seconds = (ms: number) => Math.round(ms) / 1000;

/** Runs `action` and logs how long it took. */
export async function timed<T>(what: string, action: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await action();
  console.log(`${what}: ${Math.round(performance.now() - started)} ms`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Device calls

export interface CallRecord {
  tool: "task_list" | "fs_list_dir";
  startedAt: number;
  deadlineMs: number;
  /** Unset while the call has not settled. */
  endedAt?: number;
  /** "resolved", a DeviceCallError's code, or "other: <error>". */
  outcome?: string;
}

const FAST_DEADLINE_MS = 2000;
const SLOW_DEADLINE_MS = 3000;
/** How long the device takes to answer a slow call. */
const SLOW_ANSWER_MS = 400;
/** Pause between two calls of one loop, so a call failing at once does not spin. */
const CALL_PACE_MS = 20;

/** Calls from B to the device on A, in four loops (three fast, one slow), until stopped. */
export class CallTraffic {
  readonly records: CallRecord[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly caller: ChatInstance,
    private readonly userId: string,
  ) {}

  start(): void {
    this.running = true;
    this.loops = [
      this.loop("task_list", FAST_DEADLINE_MS),
      this.loop("task_list", FAST_DEADLINE_MS),
      this.loop("task_list", FAST_DEADLINE_MS),
      this.loop("fs_list_dir", SLOW_DEADLINE_MS),
    ];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  resolvedCount(): number {
    return this.records.filter((record) => record.outcome === "resolved").length;
  }

  private async loop(tool: CallRecord["tool"], deadlineMs: number): Promise<void> {
    while (this.running) {
      const record: CallRecord = { tool, startedAt: performance.now(), deadlineMs };
      this.records.push(record);
      const settled = this.caller.gateway.rpc
        .call({ userId: this.userId, name: tool, args: { path: "/" }, deadlineMs, origin: "chat" })
        .then(
          () => "resolved",
          (error: unknown) => (error instanceof DeviceCallError ? error.reason : `other: ${String(error)}`),
        )
        .then((outcome) => {
          record.outcome = outcome;
          record.endedAt = performance.now();
        });
      // A call that never settles must not stall the traffic: past its deadline and the slack the
      // loop moves on, and the record stays open as evidence of the hang.
      await Promise.race([settled, Bun.sleep(deadlineMs + DEADLINE_SLACK_MS * 2)]);
      await Bun.sleep(CALL_PACE_MS);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rate-limited route

export interface LimitedResponse {
  user: string;
  at: number;
  ms: number;
  status: number;
}

/** Free tier: 20 requests per minute per user and service, one more every 3 s. */
export const FREE_PER_MINUTE = 20;
const FREE_INTERVAL_MS = 60_000 / FREE_PER_MINUTE;

/** GET /api/v1/chat/conversations, behind chat's per-tier limit, alternately on A and B. */
export class LimitTraffic {
  readonly responses: LimitedResponse[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private turn = 0;

  constructor(
    private readonly ctx: TestContext,
    private readonly bases: string[],
  ) {}

  async get(user: string): Promise<LimitedResponse> {
    const base = this.bases[this.turn++ % this.bases.length];
    const token = await this.ctx.token(user, "free");
    const started = performance.now();
    const response = await fetch(`${base}/api/v1/chat/conversations`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10_000),
    }).catch(() => undefined);
    await response?.arrayBuffer();
    return { user, at: started, ms: performance.now() - started, status: response?.status ?? 0 };
  }

  /** The statuses of `count` requests sent one after the other. */
  async statuses(user: string, count: number): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < count; i++) statuses.push((await this.get(user)).status);
    return statuses;
  }

  /** Each user sends a request every `paceMs` until stopped. */
  start(users: string[], paceMs = 25): void {
    this.running = true;
    this.loops = users.map(async (user) => {
      while (this.running) {
        this.responses.push(await this.get(user));
        await Bun.sleep(paceMs);
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** What a GCRA budget of 20/min spent in full at `exhaustedAt` can admit again by `now`. */
export const regainedSince = (exhaustedAt: number, now: number) =>
  Math.floor((now - exhaustedAt) / FREE_INTERVAL_MS) + 1;

// ---------------------------------------------------------------------------------------------
// Tier changes

export interface TierEmission {
  userId: string;
  /** When billing accepted the webhook (200). */
  acceptedAt?: number;
  /** Every answer billing gave, in order; Stripe sends a webhook again until it gets a 2xx. */
  statuses: number[];
}

interface PaidUser {
  userId: string;
  payload: string;
}

const WEBHOOK_RETRY_MS = 250;
const WEBHOOK_ATTEMPTS = 40;

// ---------------------------------------------------------------------------------------------
// The world

export interface WorldOptions {
  /** REDIS_SENTINELS + REDIS_SENTINEL_NAME, or REDIS_CLUSTER_NODES. */
  redisEnv: Record<string, string>;
  /**
   * Whether an id's keys sit where the switch hits (a Cluster test: on the shard whose master it
   * kills); ids are drawn until they do. Everything does on Sentinel.
   */
  onSwitchedShard?: (keys: string[]) => boolean;
  agentRuns?: number;
  tierChanges?: number;
}

/** Draws ids until `keysOf(id)` all sit where the switch hits. */
function drawId(prefix: string, keysOf: (id: string) => string[], hit: (keys: string[]) => boolean): string {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const id = `${prefix}-${crypto.randomUUID()}`;
    if (hit(keysOf(id))) return id;
  }
  throw new Error(`no ${prefix} id hashes to the switched shard in 10000 draws`);
}

export type FailoverWorld = Awaited<ReturnType<typeof startFailoverWorld>>;

export async function startFailoverWorld(ctx: TestContext, options: WorldOptions) {
  const keys: Keys = createKeys(ctx.keyPrefix);
  const hit = options.onSwitchedShard ?? (() => true);
  const redisEnv = topologyEnv(options.redisEnv);
  const sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());

  // Chat A holds the devices (of the calls and of the agent runs); chat B only calls.
  const ownerId = drawId("chat-a", (id) => [keys.instanceInbox(id)], hit);
  const callerId = drawId("chat-b", (id) => [keys.instanceInbox(id)], hit);
  const world = await createWorld(
    ctx,
    // The production lock and stalled-check timings: a switch must not cost a run its lock.
    { ...redisEnv, AGENT_JOB_LOCK_MS: "8000", AGENT_STALLED_INTERVAL_MS: "4000" },
    { env: redisEnv, instanceId: ownerId },
  );
  const a = world.chat;
  const b = await startChat(ctx, { env: redisEnv, instanceId: callerId });
  const agent = await world.startAgent();
  const stripe = new FakeStripe();
  stripe.start();
  ctx.defer(() => stripe.stop());
  const auth = await startAuth(ctx, { env: { ...redisEnv, TRUSTED_PROXY_HOPS: "1" } });
  const billing = await ctx.start([createBillingService], {
    service: "billing",
    env: { ...redisEnv, ...billingEnv(stripe) },
  });

  // Device calls
  const callUser = drawId("caller", (id) => [keys.presence(id), keys.presenceSlots(id)], hit);
  await connectDevice(ctx, {
    url: a.wsUrl,
    userId: callUser,
    tools: {
      task_list: () => ({ tasks: [] }),
      fs_list_dir: async (_args, call) => {
        await Bun.sleep(SLOW_ANSWER_MS);
        call.signal.throwIfAborted();
        return { entries: [] };
      },
    },
  });
  const calls = new CallTraffic(b, callUser);

  // Agent runs: one per user, each with its own device on A; slow enough to span the switch.
  const runFiles = sampleFiles("/docs", 60);
  const runUsers = Array.from({ length: options.agentRuns ?? 3 }, () =>
    drawId("runner", (id) => [keys.presence(id)], hit),
  );
  const runPlans = await Promise.all(
    runUsers.map(async (userId) => {
      const store = createStore(runFiles.files);
      const device = await connectStoreDevice(ctx, world, userId, store);
      device.delayMs = 60;
      const call = api(agent.url, await ctx.token(userId, "power"));
      const { body } = await call("POST", "/configs", { type: "filesystem", config: { path: "/docs" } });
      return { userId, store, call, configId: body.id as string };
    }),
  );
  const runIds: string[] = [];
  const runs = {
    expected: runFiles.expected,
    files: Object.keys(runFiles.files).length,
    plans: runPlans,
    ids: runIds,
    async trigger(): Promise<void> {
      for (const plan of runPlans) runIds.push(await trigger(plan.call, plan.configId));
    },
    /** The runs' rows in PostgreSQL (agent.agent_run_logs). */
    async rows() {
      return agent.platform.db
        .select({
          id: agentRunLogs.id,
          status: agentRunLogs.status,
          done: agentRunLogs.itemsDone,
          failed: agentRunLogs.itemsFailed,
          starts: agentRunLogs.starts,
        })
        .from(agentRunLogs)
        .where(inArray(agentRunLogs.userId, runUsers));
    },
  };

  // Rate-limited route
  const limits = new LimitTraffic(ctx, [a.url, b.url]);
  const limitUser = () => drawId("limited", (id) => [keys.rateLimit("chat", id)], hit);

  // Tier changes: users registered with auth and paid for in Stripe; the webhooks wait to be sent.
  const paid: PaidUser[] = [];
  const payForPro = async (): Promise<PaidUser> => {
    const session = await registerUser(auth.url);
    const checkout = await fetch(`${billing.url}/api/v1/billing/checkout`, {
      method: "POST",
      headers: { authorization: `Bearer ${session.access_token}`, "content-type": "application/json" },
      body: JSON.stringify({ tier: "pro" }),
    });
    if (checkout.status !== 200) throw new Error(`checkout failed: ${checkout.status} ${await checkout.text()}`);
    const { url } = (await checkout.json()) as { url: string };
    const { session: completed } = stripe.completeCheckout(url.split("/").pop() ?? "");
    return { userId: session.user.id, payload: stripe.event("checkout.session.completed", completed) };
  };
  const tierChanges = options.tierChanges ?? 120;
  while (paid.length < tierChanges) {
    const batch = Math.min(10, tierChanges - paid.length);
    paid.push(...(await Promise.all(Array.from({ length: batch }, payForPro))));
  }
  const emissions: TierEmission[] = [];
  let emitting: Promise<void> = Promise.resolve();
  let emittingOn = false;
  let paceMs = 0;
  const sendWebhook = async (payload: string) => {
    const response = await fetch(`${billing.url}/api/v1/billing/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": await signWebhook(payload, WEBHOOK_SECRET) },
      body: payload,
      signal: AbortSignal.timeout(10_000),
    }).catch(() => undefined);
    await response?.arrayBuffer();
    return response?.status ?? 0;
  };
  const tiers = {
    emissions,
    /**
     * One webhook after another, `pace` apart (changed on the way), each sent again until billing
     * takes it, as Stripe does; until stopped or every paid user's change is out.
     */
    start(pace: number): void {
      paceMs = pace;
      emittingOn = true;
      emitting = (async () => {
        for (const user of paid) {
          if (!emittingOn) break;
          const emission: TierEmission = { userId: user.userId, statuses: [] };
          emissions.push(emission);
          for (let attempt = 0; attempt < WEBHOOK_ATTEMPTS; attempt++) {
            const status = await sendWebhook(user.payload);
            emission.statuses.push(status);
            if (status === 200) {
              emission.acceptedAt = performance.now();
              break;
            }
            await Bun.sleep(WEBHOOK_RETRY_MS);
          }
          await Bun.sleep(paceMs);
        }
      })();
    },
    set pace(pace: number) {
      paceMs = pace;
    },
    async stop(): Promise<void> {
      emittingOn = false;
      await emitting;
    },
    /** auth.users.tier of each user, straight from auth's table. */
    async tiersInAuth(userIds: string[]): Promise<Map<string, string>> {
      const rows = await sql<Array<{ id: string; tier: string }>>`
        select id, tier from auth.users where id in ${sql(userIds)}`;
      return new Map(rows.map((row) => [row.id, row.tier]));
    },
    /** Tier changes billing committed but has not moved to the stream. */
    async outboxUsers(): Promise<string[]> {
      const rows = await sql<Array<{ user_id: string }>>`select user_id from billing.outbox`;
      return rows.map((row) => row.user_id);
    },
    /** The users whose change is on the stream, read with XRANGE through billing's connection. */
    async streamUsers(): Promise<Set<string>> {
      const entries = (await billing.platform.redis?.xrange(keys.tierChangedStream, "-", "+")) ?? [];
      return new Set(entries.map(([, fields]) => (JSON.parse(fields[1] ?? "{}") as { userId?: string }).userId ?? ""));
    },
  };

  return {
    keys,
    /** The running instances, none of which is restarted through the switch. */
    services: { a, b, agent, auth, billing },
    calls,
    runs,
    limits,
    limitUser,
    tiers,
    /** Waits until `check` holds, failing with `what` past `timeoutMs`. */
    async until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
      if (!(await eventually(check, Boolean, timeoutMs, 50))) throw new Error(`${what}: not within ${timeoutMs} ms`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Through the switch

export interface SwitchTiming {
  /**
   * How long after the switch has completed (the new master serves, as the harness checks it) the
   * services may take to follow it: from then on every device call must succeed.
   */
  settleMs: number;
  /** How long traffic goes on after the switch, settling included. */
  trafficAfterMs: number;
}

/** Between two tier changes (webhooks), and while the master switches. */
const TIER_PACE_MS = 150;
const TIER_BURST_PACE_MS = 15;

export interface SwitchRecord {
  switch: Window;
  settledAt: number;
  /** The runs' statuses just before the switch began. */
  runStatusesBefore: string[];
  /** The user who spent the whole budget before the switch, and when. */
  spent: { user: string; before: number[]; exhaustedAt: number; after: number[]; afterEndedAt: number };
  /** A user whose first requests come after the switch. */
  fresh: { user: string; statuses: number[] };
}

/**
 * Starts every workload, lets each show progress on the old master, switches the master with
 * `action` (a Sentinel failover, a Cluster master killed), keeps the traffic going for
 * `timing.trafficAfterMs`, then checks the limit with the users it was kept for.
 */
export async function runThroughSwitch(
  world: FailoverWorld,
  action: () => Promise<unknown>,
  timing: SwitchTiming,
): Promise<SwitchRecord> {
  const { calls, runs, limits, tiers } = world;
  const spentUser = world.limitUser();
  const before = await limits.statuses(spentUser, FREE_PER_MINUTE + 1);
  const exhaustedAt = performance.now();
  await runs.trigger();
  calls.start();
  limits.start([world.limitUser(), world.limitUser()]);
  tiers.start(TIER_PACE_MS);
  await world.until("device calls answered before the switch", () => calls.resolvedCount() >= 20);
  await world.until(
    "every agent run under way before the switch",
    async () => (await runs.rows()).every((row) => row.status === "running" && row.done >= 2),
    30_000,
  );
  await world.until("tier changes accepted before the switch", () =>
    tiers.emissions.some((emission) => emission.acceptedAt !== undefined),
  );
  const runStatusesBefore = (await runs.rows()).map((row) => row.status);

  // Tier changes come thick while the master switches: a write acknowledged by a master that is no
  // longer the master is what could lose one.
  tiers.pace = TIER_BURST_PACE_MS;
  const startedAt = performance.now();
  await action();
  const endedAt = performance.now();
  tiers.pace = TIER_PACE_MS;
  // The length of the experiment, not a wait for a condition: traffic keeps flowing through the
  // settling and well past it (on Sentinel, past the old master's demotion some 10 s later).
  await Bun.sleep(timing.trafficAfterMs);
  await Promise.all([calls.stop(), limits.stop(), tiers.stop()]);

  const freshUser = world.limitUser();
  const fresh = await limits.statuses(freshUser, FREE_PER_MINUTE + 1);
  const after = await limits.statuses(spentUser, FREE_PER_MINUTE + 1);
  const afterEndedAt = performance.now();
  return {
    switch: { startedAt, endedAt },
    settledAt: endedAt + timing.settleMs,
    runStatusesBefore,
    spent: { user: spentUser, before, exhaustedAt, after, afterEndedAt },
    fresh: { user: freshUser, statuses: fresh },
  };
}

/** Outcomes counted per half second around the switch, for the log and for failure messages. */
export function callTimeline(records: CallRecord[], switched: Window): string {
  const buckets = new Map<number, Map<string, number>>();
  for (const record of records) {
    const bucket = Math.floor((record.startedAt - switched.startedAt) / 500) * 500;
    const counts = buckets.get(bucket) ?? new Map<string, number>();
    const outcome = record.outcome ?? "unsettled";
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    buckets.set(bucket, counts);
  }
  return [...buckets.entries()]
    .sort(([x], [y]) => x - y)
    .map(([bucket, counts]) => `${seconds(bucket)}s ${[...counts].map(([k, v]) => `${k}=${v}`).join(" ")}`)
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// The checks, the same for every topology

const describeCall = (record: CallRecord, switched: Window) =>
  `${record.tool} started ${seconds(record.startedAt - switched.startedAt)}s from the switch: ${
    record.outcome ?? "never settled"
  }${record.endedAt === undefined ? "" : ` after ${Math.round(record.endedAt - record.startedAt)} ms`} (deadline ${
    record.deadlineMs
  } ms)`;

/** Failed calls grouped by outcome: how many, and when the first and the last of them started. */
function failuresByOutcome(records: CallRecord[], switched: Window): string[] {
  const groups = new Map<string, CallRecord[]>();
  for (const record of records) {
    if (record.outcome === "resolved") continue;
    const outcome = record.outcome ?? "never settled";
    groups.set(outcome, [...(groups.get(outcome) ?? []), record]);
  }
  const from = (record: CallRecord) => `${seconds(record.startedAt - switched.endedAt)}s`;
  return [...groups].map(
    ([outcome, failed]) =>
      `${failed.length} × ${outcome}, started ${from(failed[0]!)} to ${from(failed.at(-1)!)} after the switch completed`,
  );
}

/** Registers the four scenario tests; `state` is filled by the file's beforeAll. */
export function failoverChecks(state: () => { world: FailoverWorld; record: SwitchRecord }): void {
  test("device calls: every call in flight at the switch ends by its deadline, with its result or a transport error; every call once settled succeeds", () => {
    const { world, record } = state();
    const { records } = world.calls;
    const switched = record.switch;
    console.log(
      `device calls around the switch (start of each half second: outcomes)\n${callTimeline(records, switched)}`,
    );
    const inFlight = records.filter(
      (call) => call.startedAt < switched.endedAt && (call.endedAt ?? Number.POSITIVE_INFINITY) > switched.startedAt,
    );
    const hung = records.filter(
      (call) => call.endedAt === undefined || call.endedAt - call.startedAt > call.deadlineMs + DEADLINE_SLACK_MS,
    );
    const unclear = records.filter(
      (call) => call.outcome !== undefined && call.outcome !== "resolved" && !TRANSPORT_CODES.includes(call.outcome),
    );
    const settled = records.filter((call) => call.startedAt >= record.settledAt);
    const firstSuccessAfter = records.find((call) => call.startedAt >= switched.endedAt && call.outcome === "resolved");
    console.log(
      `calls: ${records.length} in all, ${inFlight.length} in flight at the switch (${
        inFlight.filter((call) => call.outcome === "resolved").length
      } resolved), ${settled.length} after settling; switch ${Math.round(switched.endedAt - switched.startedAt)} ms; first success ${
        firstSuccessAfter ? `${Math.round(firstSuccessAfter.startedAt - switched.endedAt)} ms` : "never"
      } after it`,
    );
    expect(inFlight.length).toBeGreaterThan(0);
    expect({
      hung: hung.map((call) => describeCall(call, switched)),
      unclear: unclear.map((call) => describeCall(call, switched)),
    }).toEqual({ hung: [], unclear: [] });
    expect(settled.length).toBeGreaterThan(50);
    expect(failuresByOutcome(settled, switched)).toEqual([]);
  });

  test("agent runs started before the switch all finish afterwards, none lost, every file done", async () => {
    const { world, record } = state();
    const { runs } = world;
    expect(record.runStatusesBefore).toEqual(runs.ids.map(() => "running"));
    const rows = await eventually(
      () => runs.rows(),
      (found) => found.every((row) => isTerminal(row.status)),
      60_000,
      200,
    );
    console.log(
      `agent runs: ${rows.map((row) => `${row.status} (${row.done}/${runs.files}, ${row.starts} start(s))`).join(", ")} at ${seconds(performance.now() - record.switch.endedAt)}s after the switch`,
    );
    expect(rows.map((row) => row.id).sort()).toEqual([...runs.ids].sort());
    expect(rows.map(({ status, done, failed }) => ({ status, done, failed }))).toEqual(
      rows.map(() => ({ status: "succeeded", done: runs.files, failed: 0 })),
    );
    for (const plan of runs.plans) {
      const { store } = plan;
      expect({
        tasks: store.tasks.length,
        projects: store.projects.length,
        notes: store.notes.length,
        events: store.events.length,
      }).toEqual(runs.expected);
    }
    const viaApi = await Promise.all(
      runs.plans.map(async (plan, index) => (await plan.call("GET", `/runs/${runs.ids[index]}`)).body?.status),
    );
    expect(viaApi).toEqual(runs.plans.map(() => "succeeded"));
  }, 90_000);

  test("the rate-limited route answers 2xx or 429 through the switch and enforces the shared limit again after it", () => {
    const { world, record } = state();
    const { responses } = world.limits;
    const switched = record.switch;
    const byStatus: Record<string, number> = {};
    for (const response of responses) byStatus[response.status] = (byStatus[response.status] ?? 0) + 1;
    const during = responses.filter((response) => response.at >= switched.startedAt && response.at <= switched.endedAt);
    const slowest = Math.max(...responses.map((response) => response.ms));
    console.log(
      `rate-limited route: ${responses.length} responses ${JSON.stringify(byStatus)}, ${during.length} during the switch, slowest ${Math.round(slowest)} ms; after the switch a fresh user got ${record.fresh.statuses.filter((status) => status === 200).length} admitted, the user spent before it ${record.spent.after.filter((status) => status === 200).length}`,
    );
    expect(
      responses
        .filter((response) => response.status !== 200 && response.status !== 429)
        .map((response) => `${response.status} at ${seconds(response.at - switched.startedAt)}s from the switch`),
    ).toEqual([]);
    expect(during.length).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(2000);
    const fullBudget = [...Array(FREE_PER_MINUTE).fill(200), 429];
    // Before and after, through A and B alternately: one budget shared by both, not one each.
    expect(record.spent.before).toEqual(fullBudget);
    expect(record.fresh.statuses).toEqual(fullBudget);
    // The budget spent before the switch is still spent after it: the new master has it.
    const admittedAfter = record.spent.after.filter((status) => status === 200).length;
    expect(admittedAfter).toBeLessThanOrEqual(regainedSince(record.spent.exhaustedAt, record.spent.afterEndedAt));
    expect(admittedAfter).toBeLessThan(FREE_PER_MINUTE);
  });

  test("tier changes emitted around the switch all reach auth's consumer, and the durable stream keeps every one", async () => {
    const { world, record } = state();
    const { tiers } = world;
    const switched = record.switch;
    const emissions = tiers.emissions;
    expect(emissions.filter((emission) => emission.acceptedAt === undefined).map((e) => e.statuses)).toEqual([]);
    const accepted = emissions.map((emission) => emission.acceptedAt ?? 0);
    expect(accepted.some((at) => at < switched.startedAt)).toBe(true);
    expect(accepted.some((at) => at > switched.startedAt && at < switched.endedAt + 1000)).toBe(true);
    expect(accepted.some((at) => at > record.settledAt)).toBe(true);
    const userIds = emissions.map((emission) => emission.userId);
    const applied = await eventually(
      () => tiers.tiersInAuth(userIds),
      (found) => userIds.every((userId) => found.get(userId) === "pro"),
      20_000,
      200,
    );
    const outbox = new Set(await tiers.outboxUsers());
    const stream = await tiers.streamUsers();
    // Billing deletes a change from its outbox once the stream has taken it: from then on the
    // stream is its only record, which every consumer group (today auth's) reads from.
    const lost = emissions.filter((emission) => applied.get(emission.userId) !== "pro" || !stream.has(emission.userId));
    console.log(
      `tier changes: ${emissions.length} emitted (${emissions.filter((e) => e.statuses.length > 1).length} webhooks sent more than once), ${emissions.filter((e) => applied.get(e.userId) !== "pro").length} not applied by auth, ${emissions.filter((e) => !stream.has(e.userId)).length} missing from the stream`,
    );
    expect(
      lost.map((emission) => ({
        acceptedAt: `${seconds((emission.acceptedAt ?? 0) - switched.startedAt)}s from the switch start (switch took ${Math.round(switched.endedAt - switched.startedAt)} ms)`,
        tierInAuth: applied.get(emission.userId),
        inBillingOutbox: outbox.has(emission.userId),
        onStream: stream.has(emission.userId),
      })),
    ).toEqual([]);
  }, 60_000);
}
