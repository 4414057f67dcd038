import type { ChatCancelFrame, ChatFrame, ServerFrame } from "../protocol";
import { FrameError } from "../protocol";
import { errorFrame, ServiceError } from "../shared/errors";
import type { Tier } from "../shared/tiers";
import type { ChatEngine } from "./engine";
import type { ChatHandlers, DeviceSession, SendFrame } from "./gateway";
import { runChat, usageView } from "./run-chat";

/** What the chat adapter sends: the chunks, the end of a turn, or an error answering it. */
export type ChatServerFrame = Extract<ServerFrame, { type: "chat_chunk" | "chat_done" | "error" }>;

/** What the gateway knows about one authenticated device connection. */
export interface ChatSession {
  /** Identifies the socket: `chat_cancel` finds the chats of the connection that started them. */
  readonly connectionId: string;
  readonly userId: string;
  /** Read at every frame, so a `token` frame that changes the tier applies to the next chat. */
  readonly tier: Tier;
  readonly deviceId: string;
  /** Aborted when the socket closes: its chats stop, model calls included. */
  readonly signal?: AbortSignal;
  /**
   * Sends one frame; a returned promise is awaited, which carries socket backpressure to the model
   * stream. Throwing means the socket is gone: the chat stops.
   */
  send(frame: ChatServerFrame): void | Promise<void>;
}

export interface ChatFrameHandler {
  /**
   * Runs a `chat` frame the gateway has parsed (docs/device-protocol.md). Never throws: problems
   * become `error` frames with `ref` = request_id. Resolves when the chat has ended.
   */
  chat(session: ChatSession, frame: ChatFrame): Promise<void>;
  /** Stops the connection's chat with that request id, if it is still running. */
  cancel(session: ChatSession, frame: ChatCancelFrame): void;
  /**
   * Shutdown: refuses new chats, lets running ones finish until `deadline` (epoch ms), then cancels
   * what is left and waits for every chat to end (its chat_done, `cancelled` if it was cut).
   */
  stop(deadline: number): Promise<void>;
}

/** Chats one connection may run at once; more get an error frame. */
const MAX_CONCURRENT_PER_SESSION = 4;

export function createChatFrameHandler(engine: ChatEngine): ChatFrameHandler {
  const running = new Map<string, Map<string, AbortController>>();
  const finished = new Set<Promise<void>>();
  let draining = false;

  const sendError = async (session: ChatSession, error: unknown, ref?: string) => {
    const frame = errorFrame(error, ref);
    if (!(error instanceof ServiceError) || error.status >= 500) {
      engine.logger.error({ err: error, ref }, "chat frame failed");
    }
    try {
      await session.send(frame);
    } catch {
      // The socket is gone; nothing left to tell.
    }
  };

  const chat = async (session: ChatSession, frame: ChatFrame) => {
    const mine = running.get(session.connectionId) ?? new Map<string, AbortController>();
    if (mine.has(frame.request_id)) {
      return sendError(
        session,
        new ServiceError(FrameError.duplicateRequest, 409, "request_id already in use"),
        frame.request_id,
      );
    }
    if (mine.size >= MAX_CONCURRENT_PER_SESSION) {
      return sendError(
        session,
        new ServiceError(FrameError.tooManyChats, 429, "too many chats at once"),
        frame.request_id,
      );
    }
    const controller = new AbortController();
    const closed = () => controller.abort();
    if (session.signal?.aborted) closed();
    session.signal?.addEventListener("abort", closed, { once: true });
    mine.set(frame.request_id, controller);
    running.set(session.connectionId, mine);
    let chatId = frame.chat_id ?? "";
    try {
      const result = await runChat(engine, {
        userId: session.userId,
        tier: session.tier,
        deviceId: session.deviceId,
        surface: frame.surface,
        transport: "ws",
        chatId: frame.chat_id,
        text: frame.text,
        context: frame.context,
        signal: controller.signal,
        onStart: (started) => {
          chatId = started.chatId;
        },
        onChunk: (chunk, seq) =>
          session.send({ type: "chat_chunk", request_id: frame.request_id, chat_id: chatId, seq, chunk }),
      });
      if (result.finishReason === "error") {
        throw new ServiceError("llm_unavailable", 502, "the language model is unavailable");
      }
      await session.send({
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
      session.signal?.removeEventListener("abort", closed);
      mine.delete(frame.request_id);
      if (mine.size === 0 && running.get(session.connectionId) === mine) running.delete(session.connectionId);
    }
  };

  return {
    async chat(session, frame) {
      if (draining) return sendError(session, restarting(), frame.request_id);
      const task = chat(session, frame);
      finished.add(task);
      await task.finally(() => finished.delete(task));
    },
    cancel(session, frame) {
      running.get(session.connectionId)?.get(frame.request_id)?.abort();
    },
    async stop(deadline) {
      draining = true;
      await Promise.race([Promise.allSettled([...finished]), Bun.sleep(Math.max(0, deadline - Date.now()))]);
      for (const chats of running.values()) for (const controller of chats.values()) controller.abort();
      await Promise.allSettled([...finished]);
    },
  };
}

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
  };
}
