import type {
  ActiveTurn,
  ChatCancelFrame,
  ChatFrame,
  ChatResumeFrame,
  JourneyMessageFrame,
  JourneyStartFrame,
  ServerFrame,
} from "../../protocol";
import type { Platform } from "../../shared/platform";
import { checkRate, type RateLimiter } from "../../shared/rate-limit";
import type { Tier } from "../../shared/tiers";
import type { DeviceSession } from "./connection";

/** Sends one frame to the device that asked; false when the socket is gone or too far behind. */
export type SendFrame = (frame: ServerFrame) => boolean;

/**
 * The chat engine's entry points. The gateway validates the frame and applies the per-tier rate
 * limit first; without handlers, `chat` frames are answered with an `error` frame.
 * Chunks for the same device go through `send` (ordered, backpressure-aware); chunks produced on
 * another instance go through the gateway's `DevicePush`.
 */
export interface ChatHandlers {
  onChat(session: DeviceSession, frame: ChatFrame, send: SendFrame): void | Promise<void>;
  onChatCancel?(session: DeviceSession, frame: ChatCancelFrame, send: SendFrame): void | Promise<void>;
  /** `chat_resume`; without it the frame gets `not_resumable`. */
  onChatResume?(session: DeviceSession, frame: ChatResumeFrame, send: SendFrame): void | Promise<void>;
  /** The user's running turns, listed in `welcome`. */
  activeTurns?(session: DeviceSession): Promise<ActiveTurn[]>;
}

/**
 * Where `journey_start` and `journey_message` frames go once validated and past the same per-tier
 * rate limit as `chat` frames: the relay to the agent service. Without one they get an `error` frame.
 */
export interface JourneyHandler {
  onJourney(session: DeviceSession, frame: JourneyStartFrame | JourneyMessageFrame, send: SendFrame): Promise<void>;
}

/** The per-tier requests/min check applied to `chat` and journey frames; the shared Redis limiter plugs in here. */
export interface ChatRateLimiter {
  allowChat(userId: string, tier: Tier): Promise<{ allowed: boolean; retryAfterMs: number }>;
}

/**
 * The tier's requests/min of the chat service, on the platform's shared limiter (Redis across
 * replicas, in-process in embedded mode): one budget with the chat HTTP routes.
 */
export function sharedChatLimiter(platform: Platform, limiter?: RateLimiter): ChatRateLimiter {
  return {
    async allowChat(userId, tier) {
      const check = await checkRate(platform, { service: "chat", userId, tier, limiter });
      return { allowed: check.allowed, retryAfterMs: check.decision.retryAfterMs };
    },
  };
}
