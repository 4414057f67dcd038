import type { DevicePush } from "../shared/device-rpc";
import { errorFrame, unavailable } from "../shared/errors";
import type { JourneyJob, JourneyQueue } from "../shared/journey-relay";
import type { Logger } from "../shared/logger";
import type { Metrics } from "../shared/metrics";
import type { DeviceSession, JourneyHandler, JourneyMessageFrame, JourneyStartFrame, SendFrame } from "./gateway";

export interface JourneyRelayDeps {
  queue: JourneyQueue;
  /** The gateway's push: reaches the device on whichever instance it is connected to by then. */
  push: DevicePush;
  /** How long a request waits for an agent replica before it is withdrawn and the device told. */
  timeoutMs: number;
  logger: Logger;
  metrics: Metrics;
}

export interface JourneyRelay extends JourneyHandler {
  /** Forgets the pending deadlines; their requests stay queued and the agent drops them once expired. */
  stop(): void;
}

const waitedTooLong = () => unavailable("agent_unavailable", "no agent worker took the request in time, retry later");

/**
 * The chat side of the journey relay: a validated, rate-limited frame becomes a job on the journey
 * queue, answered by an agent replica through `DevicePush`. With no agent replica running the job
 * waits; at its deadline this instance withdraws it and tells the device, unless a replica already
 * took it (withdrawing a started job fails, so the device gets exactly one answer).
 */
export function createJourneyRelay(deps: JourneyRelayDeps): JourneyRelay {
  const { queue, push, timeoutMs, logger } = deps;
  const outcomes = deps.metrics.counter("journey_requests_total", "Journey frames relayed to the agent service", [
    "outcome",
  ]);
  const deadlines = new Set<ReturnType<typeof setTimeout>>();

  const expire = async (id: string, job: JourneyJob) => {
    if (!(await queue.remove(id).catch(() => false))) return;
    outcomes.inc({ outcome: "expired" });
    await push
      .push(job.userId, errorFrame(waitedTooLong(), job.requestId), job.deviceId)
      .catch((error: Error) => logger.warn({ err: error.message, user: job.userId }, "journey expiry not delivered"));
  };

  return {
    async onJourney(session: DeviceSession, frame: JourneyStartFrame | JourneyMessageFrame, send: SendFrame) {
      const id = crypto.randomUUID();
      const job: JourneyJob = {
        userId: session.userId,
        tier: session.tier,
        deviceId: session.deviceId,
        requestId: frame.request_id,
        expiresAt: Date.now() + timeoutMs,
        ...(frame.type === "journey_start"
          ? { action: "start", input: { type: frame.agent_type } }
          : { action: "message", input: messageInput(frame) }),
      };
      try {
        await queue.add(id, job);
      } catch (error) {
        logger.warn({ err: (error as Error).message, user: session.userId }, "journey request not queued");
        outcomes.inc({ outcome: "unavailable" });
        send(
          errorFrame(unavailable("agent_unavailable", "setup journeys are unavailable, retry later"), job.requestId),
        );
        return;
      }
      outcomes.inc({ outcome: "queued" });
      const deadline = setTimeout(() => {
        deadlines.delete(deadline);
        void expire(id, job);
      }, timeoutMs);
      deadlines.add(deadline);
    },
    stop() {
      for (const deadline of deadlines) clearTimeout(deadline);
      deadlines.clear();
    },
  };
}

function messageInput(frame: JourneyMessageFrame): Record<string, unknown> {
  const input: Record<string, unknown> = { journey_id: frame.journey_id };
  if (frame.text !== undefined) input.text = frame.text;
  if (frame.confirm !== undefined) input.confirm = frame.confirm;
  return input;
}
