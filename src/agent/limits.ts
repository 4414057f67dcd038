import { and, count, eq, gte, inArray, sql } from "drizzle-orm";
import type { Database } from "../shared/db";
import { forbidden, tooManyRequests } from "../shared/errors";
import { rateLimitHeaders } from "../shared/rate-limit";
import { limitsFor, type Tier } from "../shared/tiers";
import { ACTIVE_RUN_STATUSES } from "./model";
import { agentConfigs, agentRunLogs } from "./tables";

type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];

/** First key of the two-key advisory lock: the agent service's per-user limits ("agnt"). */
const LOCK_CLASS = 0x61_67_6e_74;

/**
 * Runs `work` in a transaction holding a per-user advisory lock, so every replica counting a
 * user's configurations or runs and inserting a new one does so one at a time: limits are exact.
 */
export async function withUserLock<T>(db: Database, userId: string, work: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${userId}))`);
    return work(tx);
  });
}

export async function countConfigs(tx: Tx | Database, userId: string): Promise<number> {
  const [row] = await tx.select({ n: count() }).from(agentConfigs).where(eq(agentConfigs.userId, userId));
  return row?.n ?? 0;
}

const startOfUtcDay = (now: Date) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));

/** Seconds until the daily run quota resets (UTC midnight). */
export const secondsToUtcMidnight = (now = new Date()) =>
  Math.max(1, Math.ceil((startOfUtcDay(now).getTime() + 86_400_000 - now.getTime()) / 1000));

export interface RunUsage {
  today: number;
  active: number;
}

export async function runUsage(tx: Tx | Database, userId: string, now = new Date()): Promise<RunUsage> {
  const [today] = await tx
    .select({ n: count() })
    .from(agentRunLogs)
    .where(and(eq(agentRunLogs.userId, userId), gte(agentRunLogs.createdAt, startOfUtcDay(now))));
  const [active] = await tx
    .select({ n: count() })
    .from(agentRunLogs)
    .where(and(eq(agentRunLogs.userId, userId), inArray(agentRunLogs.status, ACTIVE_RUN_STATUSES)));
  return { today: today?.n ?? 0, active: active?.n ?? 0 };
}

export const configLimitReached = (limit: number) =>
  forbidden("config_limit_reached", `your tier allows ${limit} agent configuration(s); delete one or upgrade`);

/** Throws the 429 for whichever run limit the user is at, or returns. */
export function assertRunAllowed(tier: Tier, usage: RunUsage, now = new Date()): void {
  const limits = limitsFor(tier);
  if (usage.today >= limits.agentRunsPerDay) {
    const reset = secondsToUtcMidnight(now);
    throw tooManyRequests(
      "run_limit_reached",
      `your tier allows ${limits.agentRunsPerDay} agent runs per day`,
      rateLimitHeaders("agent-runs", { limit: limits.agentRunsPerDay, windowMs: 86_400_000 }, refused(reset)),
    );
  }
  if (usage.active >= limits.concurrentAgentRuns) {
    throw tooManyRequests(
      "concurrent_run_limit",
      `your tier allows ${limits.concurrentAgentRuns} agent run(s) at a time; wait for one to finish or cancel it`,
      // A cap on runs at once has no window; 30 s is a fair guess at when one may have finished.
      rateLimitHeaders("agent-concurrency", { limit: limits.concurrentAgentRuns }, refused(30)),
    );
  }
}

/** A refused decision that frees up in `seconds`. */
const refused = (seconds: number) => ({
  allowed: false,
  remaining: 0,
  resetMs: seconds * 1000,
  retryAfterMs: seconds * 1000,
});
