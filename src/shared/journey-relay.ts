import { z } from "zod";
import type { JourneyView } from "../protocol";
import { type JobQueue, openSharedJobQueue } from "./jobs";
import type { Platform } from "./platform";
import { Tier } from "./tiers";

/**
 * Setup journeys driven from the device WebSocket (the socket path beside the HTTP routes, docs/architecture.md). The chat instance
 * holding the socket puts the device's request on this queue; any agent replica runs it with the
 * verbs of the HTTP routes and answers the device through `DevicePush`. The two services never call
 * each other over HTTP and each keeps to its own schema.
 */
export const JOURNEY_QUEUE = "agent-journeys";

/**
 * One attempt: a journey turn appends to the conversation and may create a configuration, so a
 * failed turn is answered with an error frame for the user to retry, never replayed behind their back.
 */
export const JOURNEY_QUEUE_OPTIONS = { attempts: 1 } as const;

export const JourneyJob = z.object({
  userId: z.string().min(1),
  /** The tier of the socket's token when the frame arrived. */
  tier: Tier,
  deviceId: z.string().min(1),
  requestId: z.string().min(1),
  /** Epoch ms after which the request is dropped unanswered by the agent (the device was told). */
  expiresAt: z.number(),
  action: z.enum(["start", "message"]),
  /** The frame's fields for the verb (`{type}` or `{journey_id, text?, confirm?}`); the agent validates them. */
  input: z.record(z.string(), z.unknown()),
});
export type JourneyJob = z.infer<typeof JourneyJob>;

export type { JourneyConfig, JourneyFrame, JourneyView } from "../protocol";

/** The REST answer: the view, plus the field older clients read. */
export type JourneyResponse = JourneyView & {
  /** @deprecated The same as `agent_type`; sent until API v2. */
  type: string;
};

/** The journey queue: BullMQ on Redis, shared in-process by chat and agent in embedded mode. */
export const openJourneyQueue = (platform: Platform, options: { lockMs?: number; stalledIntervalMs?: number } = {}) =>
  openSharedJobQueue<JourneyJob>(platform, JOURNEY_QUEUE, { ...options, ...JOURNEY_QUEUE_OPTIONS });

export type JourneyQueue = JobQueue<JourneyJob>;
