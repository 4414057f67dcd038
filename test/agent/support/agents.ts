import type { createAgentService as Factory } from "../../../src/agent";
import { createAgentService } from "../../../src/agent";
import { TERMINAL_RUN_STATUSES } from "../../../src/agent/model";
import type { RateLimiter } from "../../../src/shared/rate-limit";
import type { TestContext } from "../../../src/shared/testing";
import { eventually } from "../../../src/shared/testing";
import { type MemoryDevice, mockModels } from "./fakes";
import type { Api } from "./http";

type Overrides = Parameters<typeof Factory>[1];

/**
 * A limiter that admits everything, for tests about runs rather than limits: their helpers poll a
 * run every 25 ms, far past any tier's requests per minute.
 */
export const unlimited: RateLimiter = {
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

/** Starts an agent replica on the test's database and Redis, wired to an in-memory device. */
export async function startAgent(
  ctx: TestContext,
  device: MemoryDevice,
  env: Record<string, string> = {},
  overrides: Overrides = {},
) {
  return ctx.start(
    [
      (platform) =>
        createAgentService(platform, { rpc: device.rpc, push: device.push, models: mockModels(), ...overrides }),
    ],
    { env: { AGENT_JOB_LOCK_MS: "2000", AGENT_STALLED_INTERVAL_MS: "500", ...env } },
  );
}

const TERMINAL: string[] = TERMINAL_RUN_STATUSES;

/** Polls a run until it reaches one of `statuses` (any terminal status by default). */
export async function waitForRun(call: Api, runId: string, statuses = TERMINAL, timeoutMs = 20_000) {
  const seen = await eventually(
    () => call("GET", `/runs/${runId}`),
    (response) => statuses.includes(response.body?.status),
    timeoutMs,
    25,
  );
  return seen.body;
}

export const trigger = async (call: Api, configId: string) =>
  (await call("POST", "/trigger", { config_id: configId })).body.run_id as string;

/** Waits until at least `done` items of the run are finished. */
export const progressed = (call: Api, runId: string, done: number) =>
  eventually(
    () => call("GET", `/runs/${runId}`),
    (response) => response.body.progress.done >= done,
  );
