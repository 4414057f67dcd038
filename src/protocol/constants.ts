/*
 * The device protocol's constants, shared by the server and the SDK. Nothing here imports anything,
 * so the SDK's bundle takes these values without any server code (docs/device-protocol.md).
 */

/** The protocol version: `hello.protocol` must equal it, and the SDK's major version follows it. */
export const PROTOCOL_VERSION = 1;

export const DEVICE_WS_PATH = "/api/v1/ws/device";

/** Close codes of the device socket; the SDK's README says what the app does on each. */
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
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Bounds of a `hello`: what a device advertises is stored in its presence lease and read by every
 * caller, so it stays small. The tools callers really use are about 15 names of at most 20
 * characters (docs/device-tools.md); these bounds leave room to grow.
 */
export const HELLO_LIMITS = { deviceNameChars: 100, tools: 64, toolNameChars: 64 } as const;

/**
 * Codes of the `error` frames the socket itself sends. A frame relayed to a service (a chat turn, a
 * journey) may also be answered with that service's HTTP error codes (`validation_failed`,
 * `quota_exceeded`, `not_found`...), which keep their meaning.
 */
export const FrameError = {
  /** Not JSON, or not an object. */
  invalidJson: "invalid_json",
  /** A `type` this protocol does not have. */
  unknownType: "unknown_type",
  /** A known `type` whose fields do not match its schema, or refused by the input policy. */
  invalidFrame: "invalid_frame",
  frameTooLarge: "frame_too_large",
  binaryNotSupported: "binary_not_supported",
  /** A frame sent between `hello` and `welcome`. */
  notReady: "not_ready",
  alreadyAuthenticated: "already_authenticated",
  invalidHello: "invalid_hello",
  unsupportedProtocol: "unsupported_protocol",
  deviceLimitReached: "device_limit_reached",
  /** A `token` frame whose token was refused; the current one still applies. */
  tokenInvalid: "token_invalid",
  rateLimited: "rate_limited",
  /** A `request_id` already running on this connection. */
  duplicateRequest: "duplicate_request",
  tooManyChats: "too_many_chats",
  /** `chat_resume` of a turn that is unknown, expired, or not the user's. */
  notResumable: "not_resumable",
  /** Sent after shutdown began: resend once reconnected (to another replica). */
  serverRestarting: "server_restarting",
  chatUnavailable: "chat_unavailable",
  journeysUnavailable: "journeys_unavailable",
  /** No agent replica took a journey request in time. */
  agentUnavailable: "agent_unavailable",
  databaseUnavailable: "database_unavailable",
  internal: "internal",
} as const;
export type FrameError = (typeof FrameError)[keyof typeof FrameError];
