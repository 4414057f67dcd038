import type { DevicePush } from "../device-rpc";
import type { Platform } from "../platform";
import { laneFor } from "./lane";

/** A frame relayed on the `stream:{user_id}` channel to the instances holding that user's devices. */
export interface StreamMessage {
  /** Publishing instance: it delivered to its own devices itself. */
  from: string;
  /** Only this device, when set. */
  d?: string;
  f: { type: string } & Record<string, unknown>;
  ts: number;
}

export function parseStream(text: string): StreamMessage | undefined {
  try {
    const value = JSON.parse(text) as StreamMessage;
    return value && typeof value.from === "string" && typeof value.f?.type === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Pushes through Redis only, for services without sockets. Frames published by one instance for one
 * user arrive in publish order (one connection, one channel). Resolves with how many instances took
 * it: on the device RPC's lane, whose count is exact on every topology (sharded pub/sub on a Cluster).
 */
export function createStreamPublisher(platform: Platform, from = platform.instanceId): DevicePush {
  return {
    push(userId, frame, deviceId) {
      const message: StreamMessage = { from, f: frame, ts: Date.now() };
      if (deviceId !== undefined) message.d = deviceId;
      return laneFor(platform).publish(platform.keys.deviceStream(userId), JSON.stringify(message));
    },
  };
}
