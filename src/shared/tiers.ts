import { z } from "zod";

export const TIERS = ["free", "pro", "power", "team"] as const;
export const Tier = z.enum(TIERS);
export type Tier = z.infer<typeof Tier>;

export interface TierLimits {
  /** Requests per minute per user, per service (seed §2: 20/60/120/200). */
  requestsPerMinute: number;
  chatMessagesPerDay: number;
  agentConfigs: number;
  agentRunsPerDay: number;
  concurrentAgentRuns: number;
  /** Upper bound on model steps (tool-call rounds) in one chat turn or agent step. */
  maxToolSteps: number;
}

/** The single source of every per-tier limit. */
export const TIER_LIMITS: Record<Tier, TierLimits> = {
  free: {
    requestsPerMinute: 20,
    chatMessagesPerDay: 50,
    agentConfigs: 1,
    agentRunsPerDay: 3,
    concurrentAgentRuns: 1,
    maxToolSteps: 4,
  },
  pro: {
    requestsPerMinute: 60,
    chatMessagesPerDay: 500,
    agentConfigs: 5,
    agentRunsPerDay: 30,
    concurrentAgentRuns: 2,
    maxToolSteps: 8,
  },
  power: {
    requestsPerMinute: 120,
    chatMessagesPerDay: 2000,
    agentConfigs: 20,
    agentRunsPerDay: 200,
    concurrentAgentRuns: 4,
    maxToolSteps: 16,
  },
  team: {
    requestsPerMinute: 200,
    chatMessagesPerDay: 5000,
    agentConfigs: 50,
    agentRunsPerDay: 500,
    concurrentAgentRuns: 8,
    maxToolSteps: 24,
  },
};

export const tierRank = (tier: Tier): number => TIERS.indexOf(tier);
export const limitsFor = (tier: Tier): TierLimits => TIER_LIMITS[tier];
