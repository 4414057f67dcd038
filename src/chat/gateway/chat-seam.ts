import { limitsFor, type Tier } from "../../shared/tiers";
import type { DeviceSession } from "./connection";
import type { ChatCancelFrame, ChatFrame, JourneyMessageFrame, JourneyStartFrame, ServerFrame } from "./model";

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
 * Fixed one-minute windows per user in this process, at the tier's requests/min. A stand-in for the
 * shared limiter: each chat instance counts on its own, so N replicas allow up to N times the limit.
 */
export function createLocalChatLimiter(now: () => number = Date.now): ChatRateLimiter {
  const windows = new Map<string, { window: number; count: number }>();
  return {
    async allowChat(userId, tier) {
      const at = now();
      const window = Math.floor(at / 60_000);
      if (windows.size > 50_000) {
        for (const [key, entry] of windows) if (entry.window !== window) windows.delete(key);
      }
      const entry = windows.get(userId);
      const current = entry && entry.window === window ? entry : { window, count: 0 };
      windows.set(userId, current);
      if (current.count >= limitsFor(tier).requestsPerMinute) {
        return { allowed: false, retryAfterMs: (window + 1) * 60_000 - at };
      }
      current.count += 1;
      return { allowed: true, retryAfterMs: 0 };
    },
  };
}
