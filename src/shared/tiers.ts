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
  /** Bytes of files and backups one user may store, uploads in progress included (reserved when they start). */
  storageBytes: number;
  /** Files and backups one user may store, uploads in progress included. */
  storageObjects: number;
  /** Largest single file or backup: the content length an upload may declare. */
  maxObjectBytes: number;
  /** Backups kept per device: the newest of each of the last `backupDaily` days that have one... */
  backupDaily: number;
  /** ...plus the newest of each of the last `backupWeekly` ISO weeks that have one; older ones are pruned. */
  backupWeekly: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

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
    storageBytes: 1 * GiB,
    storageObjects: 1_000,
    maxObjectBytes: 100 * MiB,
    backupDaily: 7,
    backupWeekly: 4,
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
    storageBytes: 20 * GiB,
    storageObjects: 20_000,
    maxObjectBytes: 2 * GiB,
    backupDaily: 14,
    backupWeekly: 8,
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
    storageBytes: 100 * GiB,
    storageObjects: 100_000,
    maxObjectBytes: 5 * GiB,
    backupDaily: 30,
    backupWeekly: 12,
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
    storageBytes: 500 * GiB,
    storageObjects: 500_000,
    maxObjectBytes: 5 * GiB,
    backupDaily: 30,
    backupWeekly: 26,
  },
};

export const tierRank = (tier: Tier): number => TIERS.indexOf(tier);
export const limitsFor = (tier: Tier): TierLimits => TIER_LIMITS[tier];
