import { ServiceError } from "./errors";

/**
 * The device RPC contract (docs/architecture.md "Device RPC"). Any service on any instance calls a tool on a
 * user's device; only the chat instance holding the socket talks to it. The chat gateway provides
 * the implementation; chat's deep agent and the agent service's runner consume it.
 */
export interface DeviceCallOptions {
  userId: string;
  /** A specific device; otherwise the user's most recently connected one. */
  deviceId?: string;
  name: string;
  args: unknown;
  /** Time the device has to answer; progress frames may extend it up to a maximum. */
  deadlineMs?: number;
  signal?: AbortSignal;
  onProgress?: (progress: DeviceProgress) => void;
  /** Who asks, shown to the device (e.g. "chat", "agent:<run id>"). */
  origin?: string;
}

export interface DeviceProgress {
  progress: number;
  total?: number;
  message?: string;
}

export interface DeviceInfo {
  deviceId: string;
  deviceName?: string;
  connectionId: string;
  instanceId: string;
  /** Tool names the device advertised in `hello`. */
  tools: string[];
  connectedAt: number;
}

export interface DeviceRpc {
  /** Resolves with the tool's result, or rejects with a DeviceCallError; settles exactly once. */
  call(options: DeviceCallOptions): Promise<unknown>;
  isOnline(userId: string, deviceId?: string): Promise<boolean>;
  /** The user's live devices, most recent first. */
  devices(userId: string): Promise<DeviceInfo[]>;
}

export type DeviceCallErrorCode =
  | "device_offline"
  | "device_disconnected"
  | "deadline_exceeded"
  | "cancelled"
  | "tool_error"
  | "tool_not_supported"
  | "rpc_unavailable";

/** A failed device call; `toolCode` carries the device's own error code for `tool_error`. */
export class DeviceCallError extends ServiceError {
  constructor(
    readonly reason: DeviceCallErrorCode,
    message: string,
    readonly toolCode?: string,
  ) {
    super(
      reason,
      reason === "device_offline" || reason === "device_disconnected" ? 409 : reason === "rpc_unavailable" ? 503 : 502,
      message,
    );
  }
}

/** Frames a service may push to a user's connected devices through the gateway. */
export interface DevicePush {
  /** Delivers a server frame to every live device of the user (or one device); resolves with how many. */
  push(userId: string, frame: { type: string } & Record<string, unknown>, deviceId?: string): Promise<number>;
}
