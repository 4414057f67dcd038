import type { ErrorFrame, ServerFrame } from "./protocol";

export type ChatChunk = Extract<ServerFrame, { type: "chat_chunk" }>;
export type ChatDone = Extract<ServerFrame, { type: "chat_done" }>;

/**
 * Why a request (a chat turn, a journey step, a token renewal) failed: the server's `error` code
 * (`rate_limited`, `server_restarting`, `not_resumable`, ...) with its retry hint, or one of the
 * SDK's own: `not_connected` (the socket was not open when the request was made),
 * `connection_closed` (it closed before the answer and the client will not reconnect) and
 * `chunk_gap` (a chat stream saw a chunk go missing).
 */
export class DeviceRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "DeviceRequestError";
  }
}

/** The rejection of a request the server answered with an `error` frame: its `code` and retry hint. */
export function requestError(frame: ErrorFrame): DeviceRequestError {
  return new DeviceRequestError(frame.code, frame.message, frame.retry_after_ms);
}

export const notConnected = () => new DeviceRequestError("not_connected", "the device is not connected");
export const connectionClosed = () =>
  new DeviceRequestError("connection_closed", "the connection closed before the server answered");
export const chunkGap = (expected: number, got: number) =>
  new DeviceRequestError("chunk_gap", `chat chunk ${expected} is missing (the next one was ${got})`);

/** A promise with its settle functions (what `Promise.withResolvers` does, which Node 20 lacks). */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  return { promise, resolve, reject };
}

export interface ChatStreamOptions {
  /** The last seq already shown (a resumed turn); -1 (the default) to start from the first chunk. */
  afterSeq?: number;
  chatId?: string;
  /** Called once when the stream ends, whichever way: its client stops routing frames to it. */
  onEnd?: () => void;
}

/**
 * One chat turn: its chunks in order, each once, and the final frame. The turn outlives the
 * socket: after a reconnect the client resumes it from `lastSeq` and the stream goes on where it
 * was. `done` rejects with a DeviceRequestError when the server refuses the turn, when the client
 * closes for good, or when a chunk went missing (`chunk_gap`); iterating then simply ends.
 */
export class ChatStream implements AsyncIterable<ChatChunk> {
  readonly done: Promise<ChatDone>;
  private last: number;
  private conversation?: string;
  private readonly chunks: ChatChunk[] = [];
  private wake?: () => void;
  private finished = false;
  private readonly settle: { resolve: (done: ChatDone) => void; reject: (error: unknown) => void };
  private readonly onEnd?: () => void;

  constructor(
    readonly requestId: string,
    options: ChatStreamOptions = {},
  ) {
    const { promise, resolve, reject } = deferred<ChatDone>();
    this.done = promise;
    this.settle = { resolve, reject };
    // An app that only iterates must not see an unhandled rejection.
    promise.catch(() => {});
    this.last = options.afterSeq ?? -1;
    this.conversation = options.chatId;
    this.onEnd = options.onEnd;
  }

  /** The seq of the last chunk this stream took in (-1: none yet): where a resume starts from. */
  get lastSeq(): number {
    return this.last;
  }

  /** The turn's conversation: the one it was started or resumed with, else known from its first chunk. */
  get chatId(): string | undefined {
    return this.conversation;
  }

  /** True once `done` settled: no more chunks will come. */
  get ended(): boolean {
    return this.finished;
  }

  /**
   * Takes a chunk of this turn (called by the client that routes the turn's frames). A chunk at or below `lastSeq` is one a resume replayed and is
   * dropped; one past `lastSeq + 1` means chunks are missing, and the stream fails rather than
   * show an answer with a hole in it.
   */
  push(chunk: ChatChunk): void {
    if (this.finished || chunk.seq <= this.last) return;
    if (chunk.seq > this.last + 1) {
      this.fail(chunkGap(this.last + 1, chunk.seq));
      return;
    }
    this.last = chunk.seq;
    this.conversation = chunk.chat_id;
    this.chunks.push(chunk);
    this.wake?.();
  }

  /** Ends the stream with the turn's final frame (called by the client). */
  complete(done: ChatDone): void {
    if (this.finished) return;
    this.conversation = done.chat_id;
    this.finish();
    this.settle.resolve(done);
  }

  /** Ends the stream with an error: the server's refusal, or the client closing for good. */
  fail(error: DeviceRequestError): void {
    if (this.finished) return;
    this.finish();
    this.settle.reject(error);
  }

  private finish(): void {
    this.finished = true;
    this.wake?.();
    this.onEnd?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChatChunk> {
    for (;;) {
      const next = this.chunks.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.finished) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
