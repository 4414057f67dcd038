import type { ActiveTurn, ChatCancelFrame, ChatFrame, ChatResumeFrame, ServerFrame } from "../protocol";
import { FrameError } from "../protocol";
import { errorFrame, ServiceError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import type { Tier } from "../shared/tiers";
import type { ChatHandlers, DeviceSession, SendFrame } from "./gateway";
import { usageView } from "./run-chat";
import type { TurnEnd, TurnRecord } from "./turns/turn-log";
import type { ChatTurns } from "./turns/turns";

/** What the chat adapter sends: the chunks, the end of a turn, or an error answering it. */
export type ChatServerFrame = Extract<ServerFrame, { type: "chat_chunk" | "chat_done" | "error" }>;

/** What the gateway knows about one authenticated device connection. */
export interface ChatSession {
  /** Identifies the socket: the turns it started and follows are counted per connection. */
  readonly connectionId: string;
  readonly userId: string;
  /** Read at every frame, so a `token` frame that changes the tier applies to the next chat. */
  readonly tier: Tier;
  readonly deviceId: string;
  /** Aborted when the socket closes: what it follows stops; the turns it started go on. */
  readonly signal?: AbortSignal;
  /**
   * Sends one frame; a returned promise is awaited, which carries socket backpressure to the model
   * stream. Throwing means the socket is gone: the turn goes on without it.
   */
  send(frame: ChatServerFrame): void | Promise<void>;
}

export interface ChatFrameHandler {
  /**
   * Runs a `chat` frame the gateway has parsed (docs/device-protocol.md). Never throws: problems
   * become `error` frames with `ref` = request_id. Resolves when the chat has ended.
   */
  chat(session: ChatSession, frame: ChatFrame): Promise<void>;
  /** Stops the user's turn with that request id, on whichever instance it runs. */
  cancel(session: ChatSession, frame: ChatCancelFrame): Promise<void>;
  /** Follows one of the user's turns (`chat_resume`) until its end. Never throws. */
  resume(session: ChatSession, frame: ChatResumeFrame): Promise<void>;
  /** The user's running turns, for `welcome.active_turns`. */
  activeTurns(userId: string): Promise<ActiveTurn[]>;
  /**
   * Shutdown: refuses new chats, lets running ones finish until `deadline` (epoch ms), then ends
   * what is left as `interrupted` (its part stored) and waits for every chat to end.
   */
  stop(deadline: number): Promise<void>;
}

/** Turns one connection may run at once, and turns it may follow at once; more get an error frame. */
const MAX_CONCURRENT_PER_SESSION = 4;
const MAX_FOLLOWED_PER_SESSION = 16;

/** What a connection runs or follows, by request id: a second frame for the same id is a duplicate. */
class ConnectionRequests {
  private readonly byConnection = new Map<string, Map<string, "runs" | "follows">>();

  count(connectionId: string, kind: "runs" | "follows"): number {
    let n = 0;
    for (const value of this.byConnection.get(connectionId)?.values() ?? []) if (value === kind) n++;
    return n;
  }

  has(connectionId: string, requestId: string): boolean {
    return this.byConnection.get(connectionId)?.has(requestId) ?? false;
  }

  add(connectionId: string, requestId: string, kind: "runs" | "follows"): void {
    const mine = this.byConnection.get(connectionId) ?? new Map<string, "runs" | "follows">();
    mine.set(requestId, kind);
    this.byConnection.set(connectionId, mine);
  }

  delete(connectionId: string, requestId: string): void {
    const mine = this.byConnection.get(connectionId);
    mine?.delete(requestId);
    if (mine?.size === 0) this.byConnection.delete(connectionId);
  }
}

export function createChatFrameHandler(turns: ChatTurns, logger: Logger): ChatFrameHandler {
  const requests = new ConnectionRequests();
  const finished = new Set<Promise<void>>();
  let draining = false;

  const sendError = async (session: ChatSession, error: unknown, ref?: string) => {
    const frame = errorFrame(error, ref);
    if (!(error instanceof ServiceError) || error.status >= 500) {
      logger.error({ err: error, ref }, "chat frame failed");
    }
    await sendQuietly(session, frame);
  };

  /** Refuses a request id the connection already runs or follows, or one over the connection's cap. */
  const refusal = (session: ChatSession, requestId: string, kind: "runs" | "follows") => {
    if (requests.has(session.connectionId, requestId)) {
      return new ServiceError(FrameError.duplicateRequest, 409, "request_id already in use");
    }
    const max = kind === "runs" ? MAX_CONCURRENT_PER_SESSION : MAX_FOLLOWED_PER_SESSION;
    if (requests.count(session.connectionId, kind) >= max) {
      return new ServiceError(FrameError.tooManyChats, 429, "too many chats at once");
    }
    return undefined;
  };

  const chat = async (session: ChatSession, frame: ChatFrame) => {
    const refused = refusal(session, frame.request_id, "runs");
    if (refused) return sendError(session, refused, frame.request_id);
    requests.add(session.connectionId, frame.request_id, "runs");
    let chatId = frame.chat_id ?? "";
    try {
      const result = await turns.run({
        requestId: frame.request_id,
        userId: session.userId,
        tier: session.tier,
        deviceId: session.deviceId,
        surface: frame.surface,
        transport: "ws",
        chatId: frame.chat_id,
        text: frame.text,
        context: frame.context,
        onStart: (started) => {
          chatId = started.chatId;
        },
        onChunk: (chunk, seq) =>
          session.send({ type: "chat_chunk", request_id: frame.request_id, chat_id: chatId, seq, chunk }),
      });
      await sendQuietly(session, {
        type: "chat_done",
        request_id: frame.request_id,
        chat_id: result.chatId,
        message_id: result.messageId,
        finish_reason: result.finishReason,
        usage: usageView(result),
      });
    } catch (error) {
      await sendError(session, error, frame.request_id);
    } finally {
      requests.delete(session.connectionId, frame.request_id);
    }
  };

  const resume = async (session: ChatSession, frame: ChatResumeFrame) => {
    const refused = refusal(session, frame.request_id, "follows");
    if (refused) return sendError(session, refused, frame.request_id);
    requests.add(session.connectionId, frame.request_id, "follows");
    try {
      const ref = { userId: session.userId, requestId: frame.request_id };
      const followed = await turns.follow(ref, frame.after_seq, socketSink(session, frame.request_id), session.signal);
      if (!followed) await sendError(session, notResumable(), frame.request_id);
    } catch (error) {
      await sendError(session, error, frame.request_id);
    } finally {
      requests.delete(session.connectionId, frame.request_id);
    }
  };

  const tracked = async (task: Promise<void>) => {
    finished.add(task);
    await task.finally(() => finished.delete(task));
  };

  return {
    async chat(session, frame) {
      if (draining) return sendError(session, restarting(), frame.request_id);
      await tracked(chat(session, frame));
    },
    async cancel(session, frame) {
      await turns.stop({ userId: session.userId, requestId: frame.request_id }).catch((error: unknown) => {
        logger.warn({ err: error, ref: frame.request_id }, "chat stop not delivered");
      });
    },
    async resume(session, frame) {
      if (draining) return sendError(session, restarting(), frame.request_id);
      await tracked(resume(session, frame));
    },
    activeTurns: (userId) => turns.active(userId),
    async stop(deadline) {
      draining = true;
      await turns.drain(deadline);
      await Promise.allSettled([...finished]);
    },
  };
}

async function sendQuietly(session: ChatSession, frame: ChatServerFrame): Promise<void> {
  try {
    await session.send(frame);
  } catch {
    // The socket is gone; nothing left to tell.
  }
}

/** A followed turn's entries as the frames the device gets from the turn's own socket. */
function socketSink(session: ChatSession, requestId: string) {
  return {
    chunk: (seq: number, chunk: unknown, record: TurnRecord) =>
      session.send({ type: "chat_chunk", request_id: requestId, chat_id: record.chatId, seq, chunk }),
    end: (end: TurnEnd, record: TurnRecord) => session.send(endFrame(requestId, end, record)),
  };
}

function endFrame(requestId: string, end: TurnEnd, record: TurnRecord): ChatServerFrame {
  if (end.outcome === "error") return { type: "error", code: end.code, message: end.message, ref: requestId };
  const { outcome: _, ...done } = end;
  return { type: "chat_done", request_id: requestId, ...done, chat_id: done.chat_id || record.chatId };
}

const notResumable = () =>
  new ServiceError(FrameError.notResumable, 404, "no such turn of yours is running or kept to resume");

/** A chat frame arriving after shutdown began: the device resends it once reconnected elsewhere. */
const restarting = () =>
  new ServiceError(FrameError.serverRestarting, 503, "this server is restarting; resend after reconnecting", {
    "retry-after": "1",
  });

/**
 * Plugs the frame handler into the device gateway's chat seam. The gateway has already parsed the
 * frame against the protocol's schema and checked the per-minute rate limit.
 */
export function gatewayChatHandlers(frames: ChatFrameHandler): ChatHandlers {
  const toSession = (device: DeviceSession, send: SendFrame): ChatSession => ({
    connectionId: device.connectionId,
    userId: device.userId,
    get tier() {
      return device.tier;
    },
    deviceId: device.deviceId,
    signal: device.signal,
    send(frame) {
      if (!send(frame)) throw new Error("device socket closed or too slow");
    },
  });
  return {
    onChat: (device, frame, send) => frames.chat(toSession(device, send), frame),
    onChatCancel: (device, frame, send) => frames.cancel(toSession(device, send), frame),
    onChatResume: (device, frame, send) => frames.resume(toSession(device, send), frame),
    activeTurns: (device) => frames.activeTurns(device.userId),
  };
}
