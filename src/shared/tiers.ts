import { z } from "zod";

export const TIERS = ["free", "pro", "power", "team"] as const;
export const Tier = z.enum(TIERS);
export type Tier = z.infer<typeof Tier>;

export interface TierLimits {
  /** Requests per minute per user, per service (20/60/120/200, docs/architecture.md "Tiers"). */
  requestsPerMinute: number;
  /**
   * Setup-journey turns per minute per user (`journey/start`, `journey/message` and their socket
   * frames, one budget): each is a model call, so tighter than `requestsPerMinute`.
   */
  journeyTurnsPerMinute: number;
  /** Stripe Checkout and customer-portal sessions per minute per user, one budget: a person needs one or two. */
  billingSessionsPerMinute: number;
  chatMessagesPerDay: number;
  agentConfigs: number;
  agentRunsPerDay: number;
  concurrentAgentRuns: number;
  /** Upper bound on model steps (tool-call rounds) in one chat turn or agent step. */
  maxToolSteps: number;
  /** Multiplies DEVICE_MAX_PER_USER: devices of one user connected at once (5/10/20/40 by default). */
  deviceScale: number;
}

/** The single source of every per-tier limit. */
export const TIER_LIMITS: Record<Tier, TierLimits> = {
  free: {
    requestsPerMinute: 20,
    journeyTurnsPerMinute: 5,
    billingSessionsPerMinute: 5,
    chatMessagesPerDay: 50,
    agentConfigs: 1,
    agentRunsPerDay: 3,
    concurrentAgentRuns: 1,
    maxToolSteps: 4,
    deviceScale: 1,
  },
  pro: {
    requestsPerMinute: 60,
    journeyTurnsPerMinute: 10,
    billingSessionsPerMinute: 5,
    chatMessagesPerDay: 500,
    agentConfigs: 5,
    agentRunsPerDay: 30,
    concurrentAgentRuns: 2,
    maxToolSteps: 8,
    deviceScale: 2,
  },
  power: {
    requestsPerMinute: 120,
    journeyTurnsPerMinute: 20,
    billingSessionsPerMinute: 5,
    chatMessagesPerDay: 2000,
    agentConfigs: 20,
    agentRunsPerDay: 200,
    concurrentAgentRuns: 4,
    maxToolSteps: 16,
    deviceScale: 4,
  },
  team: {
    requestsPerMinute: 200,
    journeyTurnsPerMinute: 30,
    billingSessionsPerMinute: 5,
    chatMessagesPerDay: 5000,
    agentConfigs: 50,
    agentRunsPerDay: 500,
    concurrentAgentRuns: 8,
    maxToolSteps: 24,
    deviceScale: 8,
  },
};

export const tierRank = (tier: Tier): number => TIERS.indexOf(tier);
export const limitsFor = (tier: Tier): TierLimits => TIER_LIMITS[tier];
