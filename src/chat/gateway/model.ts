import { z } from "zod";
import type { ErrorFrame } from "../../shared/errors";
import type { JourneyFrame } from "../../shared/journey-relay";

/** Protocol version spoken by this gateway; `hello.protocol` must match. */
export const PROTOCOL_VERSION = 1;
export const DEVICE_WS_PATH = "/api/v1/ws/device";

/** Close codes a device can act on (the SDK reconnects on all but the final ones). */
export const CloseCode = {
  goingAway: 1001,
  /** The server could not keep up with a device that reads too slowly. */
  tooSlow: 1013,
  /** A `hello` out of the protocol's bounds (see HELLO_LIMITS): sending it again cannot succeed. */
  invalidHello: 4400,
  unauthorized: 4401,
  /** The auth session was ended (logout, password change, downgrade): sign in again, then reconnect. */
  sessionEnded: 4403,
  heartbeatTimeout: 4408,
  /** A newer connection with the same device id took over; the device should not reconnect. */
  replaced: 4409,
  tokenExpired: 4419,
  /** The user already has as many devices connected as the tier allows; the newest is refused. */
  tooManyDevices: 4429,
  unsupportedProtocol: 4426,
} as const;

const Id = z.string().min(1).max(128);

/**
 * Bounds of a `hello`: what a device advertises is stored in its presence lease and read by every
 * caller, so it stays small. The tools callers really use (`DEVICE_TOOLS` of the chat agent, the
 * agents' `fs_*` tools) are about 15 names of at most 20 characters; these bounds leave room to grow.
 */
export const HELLO_LIMITS = { deviceNameChars: 100, tools: 64, toolNameChars: 64 } as const;

export const HelloFrame = z.object({
  type: z.literal("hello"),
  /** Optional when the upgrade request carried `Authorization: Bearer`. */
  token: z.string().min(1).max(8192).optional(),
  device_id: Id,
  device_name: z.string().max(HELLO_LIMITS.deviceNameChars).optional(),
  /** Tool names are identifiers such as `task_list` or `fs_read_file`. */
  tools: z
    .array(
      z
        .string()
        .min(1)
        .max(HELLO_LIMITS.toolNameChars)
        .regex(/^[A-Za-z0-9_.:-]+$/, "tool names are letters, digits and _ . : -"),
    )
    .max(HELLO_LIMITS.tools)
    .default([]),
  protocol: z.number().int(),
});
export type HelloFrame = z.infer<typeof HelloFrame>;

export const ChatFrame = z.object({
  type: z.literal("chat"),
  request_id: Id,
  chat_id: Id.optional(),
  surface: z.enum(["home", "floating"]),
  text: z.string().min(1).max(100_000),
  /** `ws_context` of the floating chat; the chat engine validates its fields. */
  context: z.unknown().optional(),
});
export type ChatFrame = z.infer<typeof ChatFrame>;

export const ChatCancelFrame = z.object({ type: z.literal("chat_cancel"), request_id: Id });
export type ChatCancelFrame = z.infer<typeof ChatCancelFrame>;

export const ToolError = z.object({ code: z.string().min(1).max(100), message: z.string().max(10_000) });

export const ToolResultFrame = z.discriminatedUnion("ok", [
  z.object({ type: z.literal("tool_result"), id: Id, ok: z.literal(true), result: z.unknown() }),
  z.object({ type: z.literal("tool_result"), id: Id, ok: z.literal(false), error: ToolError }),
]);
export type ToolResultFrame = z.infer<typeof ToolResultFrame>;

export const ToolProgressFrame = z.object({
  type: z.literal("tool_progress"),
  id: Id,
  progress: z.number().finite(),
  total: z.number().finite().optional(),
  message: z.string().max(1000).optional(),
});
export type ToolProgressFrame = z.infer<typeof ToolProgressFrame>;

/** Starts an agent setup journey (relayed to the agent service); answered by a `journey` frame. */
export const JourneyStartFrame = z.object({
  type: z.literal("journey_start"),
  request_id: Id,
  /** The agent type, as in `GET /api/v1/agents/catalog`. */
  agent_type: z.string().trim().min(1).max(64),
});
export type JourneyStartFrame = z.infer<typeof JourneyStartFrame>;

/** One user message of a journey, or the confirmation of its configuration. */
export const JourneyMessageFrame = z
  .object({
    type: z.literal("journey_message"),
    request_id: Id,
    journey_id: z.string().min(1).max(64),
    text: z.string().trim().min(1).max(4000).optional(),
    confirm: z.boolean().optional(),
  })
  .refine((frame) => frame.text !== undefined || frame.confirm !== undefined, "text or confirm is required");
export type JourneyMessageFrame = z.infer<typeof JourneyMessageFrame>;

export const TokenFrame = z.object({ type: z.literal("token"), token: z.string().min(1).max(8192) });
export const PingFrame = z.object({ type: z.literal("ping") });

/** Every frame a device may send after `hello`. */
export const DeviceFrame = z.discriminatedUnion("type", [
  ChatFrame,
  ChatCancelFrame,
  JourneyStartFrame,
  JourneyMessageFrame,
  ToolResultFrame,
  ToolProgressFrame,
  TokenFrame,
  PingFrame,
  HelloFrame,
]);
export type DeviceFrame = z.infer<typeof DeviceFrame>;
export const DEVICE_FRAME_TYPES = [
  "hello",
  "chat",
  "chat_cancel",
  "journey_start",
  "journey_message",
  "tool_result",
  "tool_progress",
  "token",
  "ping",
];

/** Frames the server sends (not validated on the way out; typed for the SDK and the chat engine). */
export type ServerFrame =
  | { type: "welcome"; connection_id: string; heartbeat_s: number; protocol: number }
  | { type: "tool_call"; id: string; name: string; args: unknown; deadline_ms: number; origin: string }
  | { type: "tool_cancel"; id: string; reason: string }
  | { type: "chat_chunk"; request_id: string; chat_id: string; seq: number; chunk: unknown }
  | { type: "chat_done"; request_id: string; chat_id: string; message_id: string; usage?: unknown }
  | ({ type: "agent_event"; run_id: string } & Record<string, unknown>)
  | { type: "session"; action: "refresh" }
  | JourneyFrame
  | ErrorFrame
  | { type: "pong" };
