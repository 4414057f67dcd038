/*
 * The device protocol as the SDK sees it: the constants and frame types of `src/protocol`, the one
 * definition the server parses with. Values come from a module that imports nothing and frame types
 * are imported as types only, so the package's bundle stays free of server code and of zod.
 */
import { PROTOCOL_VERSION } from "../protocol/constants";

export { CloseCode, FrameError, HELLO_LIMITS, PROTOCOL_VERSION } from "../protocol/constants";
export type {
  ActiveTurn,
  ChatContext,
  ChatDoneFrame,
  ErrorFrame,
  JourneyConfig,
  JourneyFrame,
  JourneyView,
  LocalPlugin,
  LocalPluginGrants,
  PluginsFrame,
  ServerFrame,
  Surface,
} from "../protocol/frames";

/** Protocol spoken by this SDK: the server's `PROTOCOL_VERSION`. */
export const DEVICE_PROTOCOL = PROTOCOL_VERSION;
/** This package's version: its major is the protocol version it speaks. */
export const SDK_VERSION = "1.0.0";

/**
 * Reported by the SDK itself, never sent by the server: the attempt failed without a close frame
 * (refused, unreachable, no `welcome` within `connectTimeoutMs`, or the token provider threw).
 */
export const CONNECTION_FAILED = 1006;
