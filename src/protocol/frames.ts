/*
 * Every frame of the device protocol, both directions, as zod schemas with their inferred types:
 * the one definition the gateway parses with and the SDK types its frames from (the SDK imports
 * types only, so its bundle carries no zod). docs/device-protocol.md describes each frame.
 */
import { z } from "zod";
import { HELLO_LIMITS } from "./constants";

const Id = z.string().min(1).max(128);

// ---- Device -> server -------------------------------------------------------------------------

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

export const Surface = z.enum(["home", "floating"]);
export type Surface = z.infer<typeof Surface>;

const short = (max: number) => z.string().max(max);

/**
 * `ws_context`: what the user is looking at when they open the floating chat, sent by the device.
 * Every field is bounded; the whole object is data for the model, never instructions.
 */
export const ChatContext = z
  .object({
    app: short(200),
    window_title: short(500),
    url: short(2000),
    selection: short(4000),
    /** The entity on screen, e.g. a task or note the user is editing. */
    item: z.object({ type: short(50), id: short(200), title: short(500).optional() }),
  })
  .partial()
  .strict();
export type ChatContext = z.infer<typeof ChatContext>;

/** A chat turn over the socket: the same fields as `POST /api/v1/chat`, plus the request id. */
export const ChatFrame = z.object({
  type: z.literal("chat"),
  request_id: Id,
  /** A conversation of the user's; omitted to start one. */
  chat_id: z.uuid().optional(),
  surface: Surface.default("home"),
  /** Its length is checked against CHAT_MAX_INPUT_CHARS; this cap stops abuse early. */
  text: z.string().min(1).max(100_000),
  context: ChatContext.optional(),
});
export type ChatFrame = z.infer<typeof ChatFrame>;

/** Stops the user's turn with that request id, whichever of their devices or instances runs it. */
export const ChatCancelFrame = z.object({ type: z.literal("chat_cancel"), request_id: Id });
export type ChatCancelFrame = z.infer<typeof ChatCancelFrame>;

/**
 * Follows one of the user's turns from any of their sockets, on any instance: every chunk with a
 * `seq` above `after_seq` (-1: from the start), then the live ones, then its `chat_done` (or
 * `error`). A turn that is unknown, expired or another user's gets `error {code: not_resumable}`.
 */
export const ChatResumeFrame = z.object({
  type: z.literal("chat_resume"),
  request_id: Id,
  after_seq: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).default(-1),
});
export type ChatResumeFrame = z.infer<typeof ChatResumeFrame>;

export const ToolError = z.object({ code: z.string().min(1).max(100), message: z.string().max(10_000) });
export type ToolError = z.infer<typeof ToolError>;

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

/** A fresh access token for the open socket (same user); a changed tier applies to the next frames. */
export const TokenFrame = z.object({ type: z.literal("token"), token: z.string().min(1).max(8192) });
export type TokenFrame = z.infer<typeof TokenFrame>;

export const PingFrame = z.object({ type: z.literal("ping") });

/** Every frame a device may send. */
export const DeviceFrame = z.discriminatedUnion("type", [
  HelloFrame,
  ChatFrame,
  ChatCancelFrame,
  ChatResumeFrame,
  JourneyStartFrame,
  JourneyMessageFrame,
  ToolResultFrame,
  ToolProgressFrame,
  TokenFrame,
  PingFrame,
]);
export type DeviceFrame = z.infer<typeof DeviceFrame>;
export type DeviceFrameType = DeviceFrame["type"];

/** The `type`s a device may send, for telling an unknown frame from a malformed one. */
export const DEVICE_FRAME_TYPES: ReadonlySet<string> = new Set<DeviceFrameType>([
  "hello",
  "chat",
  "chat_cancel",
  "chat_resume",
  "journey_start",
  "journey_message",
  "tool_result",
  "tool_progress",
  "token",
  "ping",
]);

// ---- Server -> device -------------------------------------------------------------------------

/** A turn of the user's still generating: `chat_resume` it from `last_seq` (or from where the app got to). */
export const ActiveTurn = z.object({ request_id: z.string(), chat_id: z.string(), last_seq: z.number().int() });
export type ActiveTurn = z.infer<typeof ActiveTurn>;

export const WelcomeFrame = z.object({
  type: z.literal("welcome"),
  connection_id: z.string(),
  heartbeat_s: z.number(),
  protocol: z.number().int(),
  /** The user's turns still running, on any instance, so an app that restarted can resume them. */
  active_turns: z.array(ActiveTurn),
});
export type WelcomeFrame = z.infer<typeof WelcomeFrame>;

export const ToolCallFrame = z.object({
  type: z.literal("tool_call"),
  id: z.string(),
  /** A tool of docs/device-tools.md. */
  name: z.string(),
  args: z.unknown(),
  deadline_ms: z.number(),
  /** Who asks: `chat` (the chat agent) or `agent` (an agent run). */
  origin: z.string(),
});
export type ToolCallFrame = z.infer<typeof ToolCallFrame>;

export const ToolCancelFrame = z.object({ type: z.literal("tool_cancel"), id: z.string(), reason: z.string() });
export type ToolCancelFrame = z.infer<typeof ToolCancelFrame>;

/** One AI SDK UI-message-stream chunk of a chat turn (`text-delta`, `tool-input-available`...). */
export const ChatChunkFrame = z.object({
  type: z.literal("chat_chunk"),
  request_id: z.string(),
  chat_id: z.string(),
  seq: z.number().int(),
  chunk: z.unknown(),
});
export type ChatChunkFrame = z.infer<typeof ChatChunkFrame>;

export const ChatUsage = z.object({ input_tokens: z.number(), output_tokens: z.number(), total_tokens: z.number() });
export type ChatUsage = z.infer<typeof ChatUsage>;

export const ChatDoneFrame = z.object({
  type: z.literal("chat_done"),
  request_id: z.string(),
  chat_id: z.string(),
  message_id: z.string(),
  /**
   * The model's finish reason (`stop`, `length`, `tool-calls`...), or `stopped` (a `chat_cancel` or
   * `POST /chat/:chat_id/stop` ended it) or `interrupted` (the instance generating it went away); in
   * both, the part already streamed is stored as the message.
   */
  finish_reason: z.string(),
  usage: ChatUsage,
});
export type ChatDoneFrame = z.infer<typeof ChatDoneFrame>;

/** Progress and end of an agent run; `event` is `started`, `progress`, `paused`, `resumed` or `finished`. */
export const AgentEventFrame = z.looseObject({ type: z.literal("agent_event"), run_id: z.string(), event: z.string() });
export type AgentEventFrame = z.infer<typeof AgentEventFrame>;

/** The user's tier changed: fetch a fresh token and send it as `token`. */
export const SessionFrame = z.object({ type: z.literal("session"), action: z.literal("refresh") });
export type SessionFrame = z.infer<typeof SessionFrame>;

/** What the user granted a plugin: the device tools it may use, the origins it may reach, the data it may read. */
export const LocalPluginGrants = z.object({
  device_tools: z.array(z.string()),
  origins: z.array(z.string()),
  data: z.array(z.string()),
});
export type LocalPluginGrants = z.infer<typeof LocalPluginGrants>;

/** A plugin the app runs itself: where to download its package, the digest to check it against, what it may do. */
export const LocalPlugin = z.object({
  id: z.string(),
  /** Unique, lowercase `[a-z0-9-]`. */
  slug: z.string(),
  version: z.string(),
  /** `sha256` is the hex SHA-256 of the package's bytes: install nothing that does not match it. */
  package: z.object({ url: z.string(), sha256: z.string() }),
  /** The tools the installed version's manifest declares. */
  tools: z.array(z.object({ name: z.string(), description: z.string().optional() })),
  grants: LocalPluginGrants,
});
export type LocalPlugin = z.infer<typeof LocalPlugin>;

/**
 * The user's installed local plugins, the whole list: after `welcome`, and again whenever they
 * change (install, uninstall, upgrade, a payment that ended). Not sent while the plugins service
 * cannot be reached, so an app keeps the list it last had until a frame says otherwise.
 */
export const PluginsFrame = z.object({ type: z.literal("plugins"), local: z.array(LocalPlugin) });
export type PluginsFrame = z.infer<typeof PluginsFrame>;

/** The configuration a journey created, as `GET /api/v1/agents/configs/:id` shows it. */
export const JourneyConfig = z.object({
  id: z.string(),
  type: z.string(),
  kind: z.string(),
  name: z.string(),
  config: z.unknown(),
  device_id: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type JourneyConfig = z.infer<typeof JourneyConfig>;

/** One journey turn's answer: the same over HTTP and in the `journey` frame. */
export const JourneyView = z.object({
  journey_id: z.string(),
  /** The agent type, as in `GET /api/v1/agents/catalog`. */
  agent_type: z.string(),
  status: z.enum(["collecting", "confirming", "completed"]),
  /** What the assistant says next. */
  reply: z.string(),
  draft: z.record(z.string(), z.unknown()),
  /** Configuration fields still missing or invalid. */
  missing: z.array(z.string()),
  /** The configuration created when the journey completed, and its id. */
  config_id: z.string().optional(),
  config: JourneyConfig.optional(),
});
export type JourneyView = z.infer<typeof JourneyView>;

/** Answer to `journey_start` and `journey_message`. */
export const JourneyFrame = JourneyView.extend({
  type: z.literal("journey"),
  request_id: z.string(),
  /** @deprecated The same as `reply`; sent until the next protocol version. */
  message: z.string(),
});
export type JourneyFrame = z.infer<typeof JourneyFrame>;

/** A refused or failed frame; `ref` is the `request_id` (or tool call `id`) of the frame it answers. */
export const ErrorFrame = z.object({
  type: z.literal("error"),
  /** One of `FrameError`, or the HTTP error code of the service that refused a relayed request. */
  code: z.string(),
  message: z.string(),
  ref: z.string().optional(),
  retry_after_ms: z.number().optional(),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

export const PongFrame = z.object({ type: z.literal("pong") });
export type PongFrame = z.infer<typeof PongFrame>;

/** Every frame the server sends. */
export const ServerFrame = z.discriminatedUnion("type", [
  WelcomeFrame,
  ToolCallFrame,
  ToolCancelFrame,
  ChatChunkFrame,
  ChatDoneFrame,
  AgentEventFrame,
  SessionFrame,
  PluginsFrame,
  JourneyFrame,
  ErrorFrame,
  PongFrame,
]);
export type ServerFrame = z.infer<typeof ServerFrame>;
