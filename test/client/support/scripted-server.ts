import type { Server, ServerWebSocket } from "bun";
import { CHUNKS_BEFORE_DROP, HELD_TURN, LAST_SEQ, OTHER_TURN, RESUMED_TURN } from "../runtime/resume";

export type Frame = { type: string } & Record<string, unknown>;

/**
 * A device socket as a scripted server sees it: every frame it received, in order, and the means
 * to answer, close or drop it frame by frame.
 */
export class ScriptedSocket {
  readonly received: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters: Array<{ type: string; take: (frame: Frame) => void }> = [];
  private readonly unread: Frame[] = [];
  private onClosed!: (close: { code: number; reason: string }) => void;

  constructor(
    readonly index: number,
    private readonly ws: ServerWebSocket<{ socket?: ScriptedSocket }>,
  ) {
    this.closed = new Promise((resolve) => {
      this.onClosed = resolve;
    });
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** A clean close: frames sent before it arrive first. */
  close(code = 1001, reason = "going away"): void {
    this.ws.close(code, reason);
  }

  /** Cuts the connection with no close frame, as a network drop or a crashed server does. */
  drop(): void {
    this.ws.terminate();
  }

  /** The next frame of that type not yet taken by `next`, waiting for it if need be. */
  next(type: string, timeoutMs = 5000): Promise<Frame> {
    const index = this.unread.findIndex((frame) => frame.type === type);
    if (index >= 0) return Promise.resolve(this.unread.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`socket ${this.index}: no ${type} frame; got ${JSON.stringify(this.received)}`));
      }, timeoutMs);
      const waiter = {
        type,
        take: (frame: Frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Frames of that type received so far (taken by `next` or not). */
  all(type: string): Frame[] {
    return this.received.filter((frame) => frame.type === type);
  }

  receive(frame: Frame): void {
    this.received.push(frame);
    const waiter = this.waiters.find((candidate) => candidate.type === frame.type);
    if (!waiter) {
      this.unread.push(frame);
      return;
    }
    this.waiters.splice(this.waiters.indexOf(waiter), 1);
    waiter.take(frame);
  }

  ended(code: number, reason: string): void {
    this.onClosed({ code, reason });
  }
}

/**
 * A WebSocket server standing in for the device gateway, speaking whatever the test scripts: each
 * frame a device sends reaches `onFrame` (if given) and the socket's `next`. It checks no token.
 */
export class ScriptedServer {
  readonly sockets: ScriptedSocket[] = [];
  private readonly server: Server<{ socket?: ScriptedSocket }>;
  private readonly arrivals: Array<{ index: number; take: (socket: ScriptedSocket) => void }> = [];

  constructor(onFrame?: (socket: ScriptedSocket, frame: Frame) => void) {
    const scripted = this;
    this.server = Bun.serve<{ socket?: ScriptedSocket }>({
      hostname: "127.0.0.1",
      port: 0,
      fetch(request, server) {
        if (server.upgrade(request, { data: {} })) return undefined;
        return new Response("a WebSocket only", { status: 426 });
      },
      websocket: {
        open(ws) {
          const socket = new ScriptedSocket(scripted.sockets.length, ws);
          ws.data.socket = socket;
          scripted.sockets.push(socket);
          for (const arrival of scripted.arrivals.filter((waiting) => waiting.index === socket.index)) {
            arrival.take(socket);
          }
        },
        message(ws, message) {
          const socket = ws.data.socket!;
          const frame = JSON.parse(String(message)) as Frame;
          socket.receive(frame);
          onFrame?.(socket, frame);
        },
        close(ws, code, reason) {
          ws.data.socket?.ended(code, reason);
        },
      },
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.server.port}/api/v1/ws/device`;
  }

  /** The `index`-th socket (0 is the first), once a device opened it. */
  socket(index: number, timeoutMs = 5000): Promise<ScriptedSocket> {
    const opened = this.sockets[index];
    if (opened) return Promise.resolve(opened);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no socket ${index} within ${timeoutMs} ms`)), timeoutMs);
      this.arrivals.push({
        index,
        take: (socket) => {
          clearTimeout(timer);
          resolve(socket);
        },
      });
    });
  }

  stop(): void {
    this.server.stop(true);
  }
}

/** The `welcome` answering a `hello` on socket `index`. */
export function welcome(index: number, activeTurns: unknown[] = []): Frame {
  return { type: "welcome", connection_id: `conn-${index}`, heartbeat_s: 30, protocol: 1, active_turns: activeTurns };
}

/** Chunk `seq` of a turn: a text delta saying which chunk it is. */
export function chunk(requestId: string, seq: number, chatId = "chat-1"): Frame {
  return {
    type: "chat_chunk",
    request_id: requestId,
    chat_id: chatId,
    seq,
    chunk: { type: "text-delta", id: "t0", delta: `w${seq} ` },
  };
}

export function done(requestId: string, finishReason = "stop", chatId = "chat-1"): Frame {
  return {
    type: "chat_done",
    request_id: requestId,
    chat_id: chatId,
    message_id: `message-${requestId}`,
    finish_reason: finishReason,
    usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
  };
}

/**
 * The resume scenario as a script the server plays by itself, for runs in other runtimes where the
 * test cannot step through frames: the first socket gets chunks 0..2 of a `chat` and is closed
 * with 1001; the next ones list the turn and another device's turn in `active_turns`. A
 * `chat_resume` of the turn after seq 2 is answered from seq 1 (a duplicate the device must drop)
 * up to LAST_SEQ, then `chat_done` (after any other seq, with an error naming it); of HELD_TURN,
 * never; of anything else, with `not_resumable`.
 */
export function resumeScript(socket: ScriptedSocket, frame: Frame): void {
  const requestId = String(frame.request_id);
  switch (frame.type) {
    case "hello":
      socket.send(
        welcome(
          socket.index,
          socket.index === 0
            ? []
            : [
                { request_id: RESUMED_TURN, chat_id: "chat-1", last_seq: LAST_SEQ - 1 },
                { request_id: OTHER_TURN, chat_id: "chat-2", last_seq: 0 },
              ],
        ),
      );
      return;
    case "chat":
      for (let seq = 0; seq < CHUNKS_BEFORE_DROP; seq++) socket.send(chunk(requestId, seq));
      socket.close(1001, "going away");
      return;
    case "chat_resume":
      if (requestId === HELD_TURN) return;
      if (requestId !== RESUMED_TURN) {
        socket.send({ type: "error", code: "not_resumable", message: "no such turn", ref: requestId });
        return;
      }
      // The device must resume after the last chunk it got; anything else fails its stream visibly.
      if (frame.after_seq !== CHUNKS_BEFORE_DROP - 1) {
        socket.send({
          type: "error",
          code: `after_seq_${frame.after_seq}`,
          message: "wrong after_seq",
          ref: requestId,
        });
        return;
      }
      // From one chunk before: a duplicate the device must drop.
      for (let seq = CHUNKS_BEFORE_DROP - 2; seq <= LAST_SEQ; seq++) socket.send(chunk(requestId, seq));
      socket.send(done(requestId));
      return;
  }
}
