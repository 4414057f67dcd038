/**
 * The OpenAI Chat Completions and Embeddings wire format, the subset our provider speaks: request
 * shapes as the AI SDK's OpenAI provider sends them, and encoders for replies. The built-in
 * development model and the test server answer through these, so the real provider code parses
 * every reply.
 */

export interface WireToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface WireMessage {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  content?: string | Array<{ type: string; text?: string }> | null;
  tool_calls?: WireToolCall[];
  tool_call_id?: string;
}

export interface WireTool {
  type: "function";
  function: { name: string; description?: string; parameters?: JsonSchema; strict?: boolean };
}

export interface ChatCompletionRequest {
  model: string;
  messages: WireMessage[];
  stream?: boolean;
  tools?: WireTool[];
  tool_choice?: unknown;
  response_format?: {
    type: "text" | "json_object" | "json_schema";
    json_schema?: { name?: string; schema?: JsonSchema };
  };
  max_tokens?: number;
  temperature?: number;
}

export interface EmbeddingsRequest {
  model: string;
  input: string | string[];
  dimensions?: number;
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  description?: string;
  [key: string]: unknown;
}

/** What a model says in one completion; everything optional so a script states only what matters. */
export interface ScriptedReply {
  /** Streamed as deltas: split on word boundaries unless `chunks` is given. */
  text?: string;
  chunks?: string[];
  /** `args` as an object is JSON-encoded; a string is sent verbatim (to test malformed arguments). */
  toolCalls?: Array<{ id?: string; name: string; args?: unknown }>;
  /** Structured output: sent as the message content, JSON-encoded. */
  json?: unknown;
  usage?: { prompt: number; completion: number };
  finishReason?: "stop" | "tool_calls" | "length" | "content_filter";
  /** An HTTP error instead of a completion. */
  error?: { status: number; message: string; type?: string };
  /** Delay before the first streamed chunk (or before a non-streamed reply). */
  firstTokenDelayMs?: number;
  /** Delay between streamed chunks. */
  chunkDelayMs?: number;
  /** Streams its chunks and then never ends: for cancellation tests. */
  hang?: boolean;
}

export type ScriptedToolCall = NonNullable<ScriptedReply["toolCalls"]>[number];

/** The text of a wire message, whichever content form it uses. */
export function messageText(message: WireMessage | undefined): string {
  if (!message?.content) return "";
  if (typeof message.content === "string") return message.content;
  return message.content.map((part) => part.text ?? "").join("");
}

export function splitIntoDeltas(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text ? [text] : []);
}

const usageOf = (reply: ScriptedReply) => {
  const prompt = reply.usage?.prompt ?? 10;
  const completion = reply.usage?.completion ?? Math.max(1, splitIntoDeltas(reply.text ?? "").length);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
};

const finishOf = (reply: ScriptedReply) => reply.finishReason ?? (reply.toolCalls?.length ? "tool_calls" : "stop");

const wireToolCalls = (reply: ScriptedReply): WireToolCall[] =>
  (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${index}_${call.name}`,
    type: "function",
    function: {
      name: call.name,
      arguments: typeof call.args === "string" ? call.args : JSON.stringify(call.args ?? {}),
    },
  }));

const contentOf = (reply: ScriptedReply): string | undefined =>
  reply.json !== undefined ? JSON.stringify(reply.json) : (reply.chunks?.join("") ?? reply.text);

/** A non-streamed `chat.completion` body. */
export function completionBody(reply: ScriptedReply, model: string, id = `chatcmpl-${crypto.randomUUID()}`) {
  const toolCalls = wireToolCalls(reply);
  return {
    id,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: contentOf(reply) ?? null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: finishOf(reply),
      },
    ],
    usage: usageOf(reply),
  };
}

/** The `chat.completion.chunk` payloads of a streamed reply, in order, without the `[DONE]` marker. */
export function streamChunks(reply: ScriptedReply, model: string, id = `chatcmpl-${crypto.randomUUID()}`): unknown[] {
  const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model };
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const out: unknown[] = [chunk({ role: "assistant", content: "" })];
  const deltas =
    reply.json !== undefined ? [JSON.stringify(reply.json)] : (reply.chunks ?? splitIntoDeltas(reply.text ?? ""));
  for (const delta of deltas) out.push(chunk({ content: delta }));
  wireToolCalls(reply).forEach((call, index) => {
    // Arguments arrive in two pieces, as real providers split them, so the provider must reassemble.
    const args = call.function.arguments;
    const half = Math.ceil(args.length / 2);
    out.push(
      chunk({
        tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }],
      }),
    );
    out.push(chunk({ tool_calls: [{ index, function: { arguments: args.slice(0, half) } }] }));
    if (half < args.length) out.push(chunk({ tool_calls: [{ index, function: { arguments: args.slice(half) } }] }));
  });
  out.push(chunk({}, finishOf(reply)));
  out.push({ ...base, choices: [], usage: usageOf(reply) });
  return out;
}

export interface StreamHooks {
  signal?: AbortSignal;
  onCancel?: () => void;
}

/** An SSE body for a streamed reply that honours the reply's delays and stops when the reader goes. */
export function sseStream(reply: ScriptedReply, model: string, hooks: StreamHooks = {}): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const payloads = streamChunks(reply, model);
  let cancelled = false;
  const stopped = Promise.withResolvers<void>();
  const cancel = () => {
    if (cancelled) return;
    cancelled = true;
    stopped.resolve();
    hooks.onCancel?.();
  };
  hooks.signal?.addEventListener("abort", cancel, { once: true });
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      const wait = (ms: number | undefined) => (ms && ms > 0 ? Bun.sleep(ms) : undefined);
      try {
        await wait(reply.firstTokenDelayMs);
        for (const [index, payload] of payloads.entries()) {
          if (cancelled) return;
          // In hang mode the stream stops before the finish chunk, so the reader waits for more.
          if (reply.hang && index === payloads.length - 2) {
            await stopped.promise;
            return;
          }
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(payload)}\n\n`));
          if (index > 0) await wait(reply.chunkDelayMs);
        }
        controller.enqueue(encoder.encode("data: [DONE]\n\n"));
        controller.close();
      } catch {
        cancel();
      }
    },
    cancel,
  });
}

/** An OpenAI-shaped error body. */
export function errorBody(message: string, type = "invalid_request_error") {
  return { error: { message, type, param: null, code: null } };
}

export function embeddingsBody(vectors: number[][], model: string, tokens: number) {
  return {
    object: "list",
    data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
