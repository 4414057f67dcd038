import { AISDKError } from "ai";
import type { z } from "zod";
import type { AuthUser } from "../shared/auth/verifier";
import { type ErrorFrame, errorFrame, issueDetails, ServiceError, unavailable, unprocessable } from "../shared/errors";
import { type JourneyFrame, JourneyJob, type JourneyQueue } from "../shared/journey-relay";
import type { AgentContext } from "./context";
import { type JourneyView, journeyMessage, startJourney } from "./journey";
import { JourneyMessageInput, JourneyStartInput } from "./model";

/** Throws a ServiceError (429) when the user has no journey turn left; see `journeyTurnLimit`. */
export type JourneyTurnLimit = (user: AuthUser) => Promise<void>;

/**
 * This replica's share of the journey turns relayed from device sockets by the chat service: the
 * same verbs and the same journey budget as `POST /journey/start|message`, answered to the asking
 * device through `DevicePush`.
 */
export function createJourneyWorker(
  ctx: AgentContext,
  queue: JourneyQueue,
  options: { concurrency: number; limit: JourneyTurnLimit },
) {
  return {
    start() {
      queue.process((job) => answerJourney(ctx, job.data, options.limit), { concurrency: options.concurrency });
    },
  };
}

/** Runs one relayed turn and pushes its `journey` or `error` frame; never throws for the user's mistakes. */
export async function answerJourney(ctx: AgentContext, data: unknown, limit: JourneyTurnLimit): Promise<void> {
  const parsed = JourneyJob.safeParse(data);
  if (!parsed.success) {
    ctx.logger.warn({ issues: parsed.error.issues.slice(0, 3) }, "malformed journey job dropped");
    return;
  }
  const job = parsed.data;
  const frame = await turn(ctx, job, limit);
  const reached = await ctx.push.push(job.userId, frame, job.deviceId).catch((error: Error) => {
    ctx.logger.warn({ err: error.message, user: job.userId }, "journey answer not delivered");
    return -1;
  });
  if (reached === 0) ctx.logger.info({ user: job.userId, ref: job.requestId }, "journey answer found no device");
}

async function turn(ctx: AgentContext, job: JourneyJob, limit: JourneyTurnLimit): Promise<JourneyFrame | ErrorFrame> {
  // The chat instance that queued it has told the device already, or is gone; either way nobody waits.
  if (Date.now() > job.expiresAt) {
    return errorFrame(unavailable("agent_unavailable", "no agent worker took the request in time"), job.requestId);
  }
  // The socket's token was verified by the chat instance; only its identity and tier travel.
  const user: AuthUser = { userId: job.userId, tier: job.tier, tokenId: "", expiresAt: 0 };
  try {
    await limit(user);
    const view =
      job.action === "start"
        ? await startJourney({ ctx, user, input: parse(JourneyStartInput, job.input) })
        : await journeyMessage({ ctx, user, input: parse(JourneyMessageInput, job.input) });
    return journeyFrame(job.requestId, view);
  } catch (error) {
    const known = AISDKError.isInstance(error)
      ? new ServiceError("llm_unavailable", 502, "the language model is unavailable")
      : error;
    if (!(known instanceof ServiceError) || known.status >= 500) {
      ctx.logger.error({ err: error, user: job.userId, ref: job.requestId }, "journey turn failed");
    }
    return errorFrame(known, job.requestId);
  }
}

function parse<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw unprocessable("invalid journey request", issueDetails(parsed.error.issues, [], 10));
  }
  return parsed.data;
}

/** The REST answer's view with the frame's type and request id; `message` stays for one more version. */
const journeyFrame = (requestId: string, view: JourneyView): JourneyFrame => ({
  type: "journey",
  request_id: requestId,
  ...view,
  message: view.reply,
});
