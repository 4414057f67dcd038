/**
 * One Server-Sent Events response of the AI SDK's UI message stream: `id: <seq>` on every chunk (so
 * a reconnect can send `Last-Event-ID`), a `: keep-alive` comment after `keepAliveMs` of silence
 * (proxies on the way, Cloudflare's read timeout among them, cut a response that sends nothing for
 * long, and a model or a device tool may take that long), and `data: [DONE]` at the end.
 * Writes after the client went away are dropped; `gone` says when it did.
 */
export class SseWriter {
  readonly body: ReadableStream<Uint8Array>;
  private readonly left = new AbortController();
  private sink?: ReadableStreamDefaultController<Uint8Array>;
  private readonly encoder = new TextEncoder();
  private readonly keepAlive: ReturnType<typeof setInterval>;

  constructor(keepAliveMs: number, request: Request) {
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.sink = controller;
      },
      cancel: () => this.left.abort(),
    });
    request.signal.addEventListener("abort", () => this.left.abort(), { once: true });
    this.keepAlive = setInterval(() => this.send(": keep-alive\n\n"), keepAliveMs);
    this.left.signal.addEventListener("abort", () => clearInterval(this.keepAlive), { once: true });
  }

  /** Aborted when the client went away. */
  get gone(): AbortSignal {
    return this.left.signal;
  }

  chunk(seq: number, chunk: unknown): void {
    this.send(`id: ${seq}\ndata: ${JSON.stringify(chunk)}\n\n`);
  }

  /** Ends the stream: an error chunk first when the turn failed after it started. */
  end(errorText?: string): void {
    clearInterval(this.keepAlive);
    if (errorText !== undefined) this.send(`data: ${JSON.stringify({ type: "error", errorText })}\n\n`);
    this.send("data: [DONE]\n\n");
    if (!this.left.signal.aborted) this.sink?.close();
    this.left.abort();
  }

  private send(text: string): void {
    if (this.left.signal.aborted) return;
    this.sink?.enqueue(this.encoder.encode(text));
    this.keepAlive.refresh();
  }
}
