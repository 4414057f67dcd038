import type { DeviceClient } from "./device-client";
import type { ErrorFrame, ServerFrame } from "./protocol";

export type ChatChunk = Extract<ServerFrame, { type: "chat_chunk" }>;
export type ChatDone = Extract<ServerFrame, { type: "chat_done" }>;

/**
 * Why a request (a chat turn, a journey step, a token renewal) failed: the server's `error` code
 * (`rate_limited`, `server_restarting`, ...) with its retry hint, or one of the SDK's own:
 * `not_connected` (the socket was not open when the request was made) and `connection_closed`
 * (it closed before the answer). Either of those two is worth resending once reconnected.
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

/**
 * One chat turn: its chunks in order, and the final frame. `done` rejects with a
 * DeviceRequestError when the server refuses the turn or the socket is, or goes, away; iterating
 * then simply ends.
 */
export class ChatStream implements AsyncIterable<ChatChunk> {
  readonly done: Promise<ChatDone>;
  private readonly chunks: ChatChunk[] = [];
  private wake?: () => void;
  private finished = false;
  private readonly offs: Array<() => void>;
  private readonly settle: { resolve: (done: ChatDone) => void; reject: (error: unknown) => void };

  constructor(
    readonly requestId: string,
    client: DeviceClient,
  ) {
    const { promise, resolve, reject } = deferred<ChatDone>();
    this.done = promise;
    this.settle = { resolve, reject };
    promise.catch(() => {});
    this.offs = [
      client.on("chat_chunk", (chunk) => {
        if (chunk.request_id !== requestId || this.finished) return;
        this.chunks.push(chunk);
        this.wake?.();
      }),
      client.on("chat_done", (done) => {
        if (done.request_id !== requestId) return;
        this.finish();
        resolve(done);
      }),
      client.on("error", (error) => {
        if (error.ref !== requestId) return;
        this.fail(requestError(error));
      }),
      client.on("close", () => this.fail(connectionClosed())),
    ];
  }

  /** Ends the stream with an error (used by the client when the turn could not be sent). */
  fail(error: DeviceRequestError): void {
    if (this.finished) return;
    this.finish();
    this.settle.reject(error);
  }

  private finish(): void {
    this.finished = true;
    for (const off of this.offs) off();
    this.wake?.();
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
