import { UI_MESSAGE_STREAM_HEADERS } from "ai";
import { Elysia } from "elysia";
import { JSON_BODY, responses, SIGNED_IN } from "../shared/contract";
import { ServiceError } from "../shared/errors";
import { requestIdOf } from "../shared/http";
import { protectedRoutes } from "../shared/protected-routes";
import type { ChatServiceContext } from "./context";
import type { ChatEngine } from "./engine";
import { getConversation } from "./get-conversation";
import { listConversations } from "./list-conversations";
import { deleteAllMemories, deleteMemory, listMemories } from "./memories";
import {
  ChatReply,
  ChatRequest,
  ConversationDetail,
  ConversationPage,
  ConversationParams,
  Deleted,
  MemoryPage,
  MemoryParams,
  PageQuery,
} from "./model";
import { type ChatResult, type RunChatInput, runChat, usageView } from "./run-chat";

/** Where Traefik sends the chat service's traffic; literal, so typed clients know every path. */
export const CHAT_PREFIX = "/api/v1/chat" as const;

const wantsJson = (accept: string | null) =>
  !!accept && accept.includes("application/json") && !accept.includes("text/event-stream");

export const replyView = (result: ChatResult): ChatReply => ({
  chat_id: result.chatId,
  message_id: result.messageId,
  text: result.text,
  parts: result.parts,
  finish_reason: result.finishReason,
  usage: usageView(result),
});

export function chatRoutes(ctx: ChatServiceContext) {
  const { platform, engine } = ctx;
  return new Elysia({ name: "chat-routes", prefix: CHAT_PREFIX, tags: ["chat"] })
    .use(protectedRoutes({ platform, service: "chat", logger: ctx.logger, limiter: ctx.limiter }))
    .post(
      "/",
      // Behind the same guard, sanitizer and limit as the rest: the reply is a runChat turn, not a
      // verb, because the socket's `chat` frames run the same turn; the SSE response starts only
      // once the turn is accepted, so every refusal above still answers with its HTTP status.
      ({ body, user, request }) => {
        const input = {
          userId: user.userId,
          tier: user.tier,
          surface: body.surface,
          chatId: body.chat_id,
          text: body.text,
          context: body.context,
        };
        return wantsJson(request.headers.get("accept"))
          ? wholeReply(engine, input, request)
          : streamReply(engine, input, request, platform.env.CHAT_SSE_KEEPALIVE_MS);
      },
      {
        body: ChatRequest,
        // 404: `chat_id` names no conversation of the caller's; 429 also the daily message quota.
        response: responses({ 200: ChatReply }, ...SIGNED_IN, ...JSON_BODY, 404, 502),
        detail: {
          summary: "Send a message; the reply streams as the AI SDK UI message stream (SSE)",
          description:
            "With `Accept: application/json` the whole reply comes at once as a `ChatReply`; otherwise the " +
            "reply is a `text/event-stream` of UI message chunks ending with `data: [DONE]`, and its " +
            "conversation id is in the `X-Chat-Id` header.",
          responses: {
            200: {
              description: "The reply: streamed (SSE), or whole with `Accept: application/json`",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
          },
        },
      },
    )
    .get("/conversations", ({ query, user }) => listConversations({ ctx, user, input: query }), {
      query: PageQuery,
      response: responses({ 200: ConversationPage }, ...SIGNED_IN, 422),
      detail: { summary: "The caller's conversations, most recently active first" },
    })
    .get(
      "/conversations/:id",
      ({ params, query, user }) => getConversation({ ctx, user, input: { ...query, id: params.id } }),
      {
        params: ConversationParams,
        query: PageQuery,
        response: responses({ 200: ConversationDetail }, ...SIGNED_IN, 404, 422),
        detail: { summary: "One conversation with a page of its messages" },
      },
    )
    .get("/memories", ({ query, user }) => listMemories({ ctx, user, input: query }), {
      query: PageQuery,
      response: responses({ 200: MemoryPage }, ...SIGNED_IN, 422),
      detail: { summary: "What the assistant remembers about the caller" },
    })
    .delete("/memories", ({ user }) => deleteAllMemories({ ctx, user, input: undefined }), {
      response: responses({ 200: Deleted }, ...SIGNED_IN),
      detail: { summary: "Forget everything about the caller" },
    })
    .delete("/memories/:id", ({ params, user }) => deleteMemory({ ctx, user, input: params }), {
      params: MemoryParams,
      response: responses({ 200: Deleted }, ...SIGNED_IN, 404, 422),
      detail: { summary: "Forget one memory" },
    });
}

/** The reply as one JSON object, once the turn is over. */
async function wholeReply(
  engine: ChatEngine,
  input: Omit<RunChatInput, "onChunk" | "signal" | "onStart" | "transport">,
  request: Request,
): Promise<ChatReply> {
  const result = await runChat(engine, { ...input, transport: "json", signal: request.signal, onChunk: () => {} });
  if (result.finishReason === "error") {
    throw new ServiceError("llm_unavailable", 502, "the language model is unavailable");
  }
  return replyView(result);
}

/**
 * The reply as the AI SDK UI message stream over SSE. The response starts only once the turn is
 * accepted, so validation, 404 and quota errors keep their HTTP status; a client that goes away
 * cancels the model call. A stream silent for `keepAliveMs` gets an SSE comment, which clients
 * ignore: proxies on the way (Cloudflare's read timeout among them) cut a response that sends
 * nothing for long, and a model or a device tool may take that long before the next chunk.
 */
async function streamReply(
  engine: ChatEngine,
  input: Omit<RunChatInput, "onChunk" | "signal" | "onStart" | "transport">,
  request: Request,
  keepAliveMs: number,
): Promise<Response> {
  const encoder = new TextEncoder();
  const cancel = new AbortController();
  request.signal.addEventListener("abort", () => cancel.abort(), { once: true });
  const started = Promise.withResolvers<{ chatId: string }>();
  let sink: ReadableStreamDefaultController<Uint8Array> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      sink = controller;
    },
    cancel() {
      cancel.abort();
    },
  });
  const send = (text: string) => {
    if (cancel.signal.aborted) return;
    sink?.enqueue(encoder.encode(text));
    keepAlive.refresh();
  };
  const keepAlive = setInterval(() => send(": keep-alive\n\n"), keepAliveMs);
  cancel.signal.addEventListener("abort", () => clearInterval(keepAlive), { once: true });
  const write = (data: string) => send(`data: ${data}\n\n`);
  runChat(engine, {
    ...input,
    transport: "sse",
    signal: cancel.signal,
    onStart: started.resolve,
    onChunk: (chunk) => write(JSON.stringify(chunk)),
  }).then(
    () => {
      clearInterval(keepAlive);
      write("[DONE]");
      if (!cancel.signal.aborted) sink?.close();
    },
    (error: unknown) => {
      clearInterval(keepAlive);
      started.reject(error);
      if (!cancel.signal.aborted) {
        engine.logger.warn({ err: error }, "chat stream failed after it started");
        write(JSON.stringify({ type: "error", errorText: "the reply failed" }));
        sink?.close();
      }
    },
  );
  const { chatId } = await started.promise;
  return new Response(body, {
    headers: { ...UI_MESSAGE_STREAM_HEADERS, "x-chat-id": chatId, "x-request-id": requestIdOf(request) },
  });
}
