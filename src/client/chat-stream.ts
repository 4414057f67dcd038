import type { ChatChunk, ChatDone, DeviceClient, ErrorFrame } from "./device-client";

/** The rejection of a request the server answered with an `error` frame: its `code` and retry hint. */
export function requestError(frame: ErrorFrame): Error & { code: string; retryAfterMs?: number } {
  return Object.assign(new Error(frame.message), { code: frame.code, retryAfterMs: frame.retry_after_ms });
}

/** One chat turn: its chunks in order, and the final frame (or the error that ended it). */
export class ChatStream implements AsyncIterable<ChatChunk> {
  readonly done: Promise<ChatDone>;
  private readonly chunks: ChatChunk[] = [];
  private wake?: () => void;
  private finished = false;

  constructor(
    readonly requestId: string,
    client: DeviceClient,
  ) {
    const { promise, resolve, reject } = Promise.withResolvers<ChatDone>();
    this.done = promise;
    promise.catch(() => {});
    const offs = [
      client.on("chat_chunk", (chunk) => {
        if (chunk.request_id !== requestId) return;
        this.chunks.push(chunk);
        this.wake?.();
      }),
      client.on("chat_done", (done) => {
        if (done.request_id !== requestId) return;
        finish();
        resolve(done);
      }),
      client.on("error", (error) => {
        if (error.ref !== requestId) return;
        finish();
        reject(requestError(error));
      }),
      client.on("close", () => {
        finish();
        reject(new Error("the connection closed during the chat"));
      }),
    ];
    const finish = () => {
      this.finished = true;
      for (const off of offs) off();
      this.wake?.();
    };
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
