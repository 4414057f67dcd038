import { developmentReply } from "../llm/development";
import { countWords, hashEmbedding } from "../llm/hash-embedding";
import {
  type ChatCompletionRequest,
  completionBody,
  type EmbeddingsRequest,
  embeddingsBody,
  errorBody,
  type ScriptedReply,
  sseStream,
} from "../llm/wire";

export type { ChatCompletionRequest, ScriptedReply } from "../llm/wire";

export interface RecordedRequest {
  index: number;
  path: string;
  body: unknown;
  authorization: string | null;
  stream: boolean;
  /** Set when the client went away before the reply ended (cancellation). */
  aborted: boolean;
  /** Resolves when the client aborts this request; never rejects. */
  abortedSignal: Promise<void>;
}

export interface RecordedChatRequest extends RecordedRequest {
  body: ChatCompletionRequest;
}

export type ChatHandler = (
  request: ChatCompletionRequest,
  recorded: RecordedRequest,
) => ScriptedReply | Promise<ScriptedReply>;

export interface FakeOpenAiOptions {
  /** Applied to every streamed reply that does not set its own. */
  firstTokenDelayMs?: number;
  embeddingDimensions?: number;
}

/**
 * An OpenAI-compatible HTTP server for tests (Chat Completions streamed over SSE or not, and
 * Embeddings), so the real AI SDK provider code runs against it. Replies come from a queue of
 * scripts, else from a handler, else from the deterministic development model. Every request is
 * recorded, including whether the client aborted it.
 */
export class FakeOpenAi implements AsyncDisposable {
  readonly requests: RecordedRequest[] = [];
  firstTokenDelayMs: number;
  embeddingDimensions: number;
  /** Delay before answering an embeddings request (slow-provider tests). */
  embeddingDelayMs = 0;
  private readonly queue: Array<ScriptedReply | ChatHandler> = [];
  private handler?: ChatHandler;
  private structured?: ChatHandler;
  private readonly server: ReturnType<typeof Bun.serve>;
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(options: FakeOpenAiOptions = {}) {
    this.firstTokenDelayMs = options.firstTokenDelayMs ?? 0;
    this.embeddingDimensions = options.embeddingDimensions ?? 64;
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: (request) => this.serve(request),
    });
  }

  /** Base URL to give the provider (LLM_BASE_URL). */
  get url(): string {
    return `http://127.0.0.1:${this.server.port}/v1`;
  }

  /** Queues replies for the next chat requests, in order; a function computes one from the request. */
  script(...replies: Array<ScriptedReply | ChatHandler>): this {
    this.queue.push(...replies);
    return this;
  }

  /** Answers chat requests once the script queue is empty. */
  onChat(handler: ChatHandler | undefined): this {
    this.handler = handler;
    return this;
  }

  /**
   * Answers structured-output requests (those with a `response_format`) before the script queue is
   * consulted, so background extraction calls do not consume replies scripted for the conversation.
   */
  onStructured(handler: ChatHandler | undefined): this {
    this.structured = handler;
    return this;
  }

  chatRequests(): RecordedChatRequest[] {
    return this.requests.filter((request) => request.path.endsWith("/chat/completions")) as RecordedChatRequest[];
  }

  embeddingRequests(): Array<RecordedRequest & { body: EmbeddingsRequest }> {
    return this.requests.filter((request) => request.path.endsWith("/embeddings")) as Array<
      RecordedRequest & { body: EmbeddingsRequest }
    >;
  }

  /** Resolves once at least `count` chat requests have arrived. */
  waitForChatRequests(count: number): Promise<void> {
    if (this.chatRequests().length >= count) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.waiters.push({ count, resolve });
    return promise;
  }

  async close(): Promise<void> {
    await this.server.stop(true);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private record(
    request: Request,
    path: string,
    body: unknown,
  ): { recorded: RecordedRequest; markAborted: () => void } {
    const aborted = Promise.withResolvers<void>();
    const recorded: RecordedRequest = {
      index: this.requests.length,
      path,
      body,
      authorization: request.headers.get("authorization"),
      stream: (body as { stream?: boolean } | undefined)?.stream === true,
      aborted: false,
      abortedSignal: aborted.promise,
    };
    const markAborted = () => {
      if (recorded.aborted) return;
      recorded.aborted = true;
      aborted.resolve();
    };
    request.signal.addEventListener("abort", markAborted, { once: true });
    this.requests.push(recorded);
    const chats = this.chatRequests().length;
    for (const waiter of this.waiters.splice(0)) {
      if (chats >= waiter.count) waiter.resolve();
      else this.waiters.push(waiter);
    }
    return { recorded, markAborted };
  }

  private async serve(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method !== "POST") return Response.json(errorBody("method not allowed"), { status: 405 });
    const body = await request.json().catch(() => undefined);
    const { recorded, markAborted } = this.record(request, path, body);
    if (body === undefined) return Response.json(errorBody("body must be JSON"), { status: 400 });
    if (path === "/v1/embeddings") return this.embeddings(body as EmbeddingsRequest);
    if (path !== "/v1/chat/completions") return Response.json(errorBody(`no such endpoint ${path}`), { status: 404 });
    const chat = body as ChatCompletionRequest;
    const structured = chat.response_format && chat.response_format.type !== "text" ? this.structured : undefined;
    const next = structured ?? this.queue.shift() ?? this.handler ?? developmentReply;
    const reply = typeof next === "function" ? await next(chat, recorded) : next;
    if (reply.error) {
      return Response.json(errorBody(reply.error.message, reply.error.type), { status: reply.error.status });
    }
    const timed = { ...reply, firstTokenDelayMs: reply.firstTokenDelayMs ?? this.firstTokenDelayMs };
    if (!chat.stream) {
      if (timed.firstTokenDelayMs) await Bun.sleep(timed.firstTokenDelayMs);
      return Response.json(completionBody(timed, chat.model));
    }
    const stream = sseStream(timed, chat.model, { signal: request.signal, onCancel: markAborted });
    return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
  }

  private async embeddings(body: EmbeddingsRequest): Promise<Response> {
    if (this.embeddingDelayMs > 0) await Bun.sleep(this.embeddingDelayMs);
    const values = Array.isArray(body.input) ? body.input : [body.input];
    const vectors = values.map((value) => hashEmbedding(value, body.dimensions ?? this.embeddingDimensions));
    const tokens = values.reduce((sum, value) => sum + countWords(value), 0);
    return Response.json(embeddingsBody(vectors, body.model, tokens));
  }
}

/** Starts a fake OpenAI-compatible server on a free port. */
export function startFakeOpenAi(options?: FakeOpenAiOptions): FakeOpenAi {
  return new FakeOpenAi(options);
}
