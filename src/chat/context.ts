import type { Logger } from "../shared/logger";
import type { Platform } from "../shared/platform";
import type { RateLimiter } from "../shared/rate-limit";
import type { ChatEngine } from "./engine";
import type { ChatTurns } from "./turns/turns";

/**
 * What chat's routes and verbs use, built once by `createChatService`. Named apart from the other
 * services' `XContext` because `ChatContext` is already the wire schema of a message's device
 * context (model.ts).
 */
export interface ChatServiceContext {
  platform: Platform;
  logger: Logger;
  /** The transport-independent chat engine, shared with the socket's `chat` frames. */
  engine: ChatEngine;
  /** Resumable turns: runs, stops and follows them across instances. */
  turns: ChatTurns;
  /** The tier's requests/min for chat routes and `chat` frames, one budget; undefined: the platform's. */
  limiter?: RateLimiter;
}
