import { UI_MESSAGE_STREAM_HEADERS } from "ai";
import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import { ServiceError } from "../shared/errors";
import { requestIdOf } from "../shared/http";
import type { Platform } from "../shared/platform";
import { type RateLimiter, rateLimitByTier } from "../shared/rate-limit";
import { sanitizer } from "../shared/sanitizer";
import type { ChatEngine } from "./engine";
import { getConversation } from "./get-conversation";
import { listConversations } from "./list-conversations";
import { deleteAllMemories, deleteMemory, listMemories } from "./memories";
import { ChatRequest, ConversationParams, MemoryParams, PageQuery } from "./model";
import { type ChatResult, type RunChatInput, runChat, usageView } from "./run-chat";

export const CHAT_PREFIX = "/api/v1/chat";

const wantsJson = (accept: string | null) =>
  !!accept && accept.includes("application/json") && !accept.includes("text/event-stream");

export const replyView = (result: ChatResult) => ({
  chat_id: result.chatId,
  message_id: result.messageId,
  text: result.text,
  parts: result.parts,
  finish_reason: result.finishReason,
  usage: usageView(result),
});

export function chatRoutes(platform: Platform, engine: ChatEngine, limiter?: RateLimiter) {
  return new Elysia({ name: "chat-routes", prefix: CHAT_PREFIX })
    .use(sanitizer({ maxBodyBytes: platform.env.MAX_BODY_BYTES }))
    .use(authGuard(platform.verifier, platform.logger))
    .use(rateLimitByTier(platform, "chat", { limiter }))
    .post(
      "/",
      async ({ body, user, request }) => {
        const input = {
          userId: user.userId,
          tier: user.tier,
          surface: body.surface,
          chatId: body.chat_id,
          text: body.text,
          context: body.context,
        };
        if (wantsJson(request.headers.get("accept"))) {
          const result = await runChat(engine, { ...input, signal: request.signal, onChunk: () => {} });
          if (result.finishReason === "error") {
            throw new ServiceError("llm_unavailable", 502, "the language model is unavailable");
          }
          return replyView(result);
        }
        return streamReply(engine, input, request);
      },
      { body: ChatRequest },
    )
    .get("/conversations", ({ query, user }) => listConversations({ ctx: { engine, user }, input: query }), {
      query: PageQuery,
    })
    .get(
      "/conversations/:id",
      ({ params, query, user }) => getConversation({ ctx: { engine, user }, input: { ...query, id: params.id } }),
      { params: ConversationParams, query: PageQuery },
    )
    .get("/memories", ({ query, user }) => listMemories({ ctx: { engine, user }, input: query }), { query: PageQuery })
    .delete("/memories", ({ user }) => deleteAllMemories({ ctx: { engine, user } }))
    .delete("/memories/:id", ({ params, user }) => deleteMemory({ ctx: { engine, user }, input: params }), {
      params: MemoryParams,
    });
}

/**
 * The reply as the AI SDK UI message stream over SSE. The response starts only once the turn is
 * accepted, so validation, 404 and quota errors keep their HTTP status; a client that goes away
 * cancels the model call.
 */
async function streamReply(
  engine: ChatEngine,
  input: Omit<RunChatInput, "onChunk" | "signal" | "onStart">,
  request: Request,
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
  const write = (data: string) => {
    if (!cancel.signal.aborted) sink?.enqueue(encoder.encode(`data: ${data}\n\n`));
  };
  runChat(engine, {
    ...input,
    signal: cancel.signal,
    onStart: started.resolve,
    onChunk: (chunk) => write(JSON.stringify(chunk)),
  }).then(
    () => {
      write("[DONE]");
      if (!cancel.signal.aborted) sink?.close();
    },
    (error: unknown) => {
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
