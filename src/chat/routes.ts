import { UI_MESSAGE_STREAM_HEADERS } from "ai";
import { Elysia } from "elysia";
import { z } from "zod";
import type { AuthUser } from "../shared/auth/verifier";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { notFound, ServiceError } from "../shared/errors";
import { requestIdOf } from "../shared/http";
import type { Logger } from "../shared/logger";
import { protectedRoutes } from "../shared/protected-routes";
import type { ChatServiceContext } from "./context";
import { getConversation } from "./get-conversation";
import { findConversation } from "./history";
import { listConversations } from "./list-conversations";
import { deleteAllMemories, deleteMemory, listMemories } from "./memories";
import {
  ChatParams,
  ChatReply,
  ChatRequest,
  ConversationDetail,
  ConversationPage,
  ConversationParams,
  Deleted,
  MemoryPage,
  MemoryParams,
  PageQuery,
  ResumeHeaders,
  StopReply,
} from "./model";
import { type ChatResult, usageView } from "./run-chat";
import { SseWriter } from "./sse";
import type { TurnEnd } from "./turns/turn-log";
import type { ChatTurns, TurnInput } from "./turns/turns";

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
  const { platform } = ctx;
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
          ? wholeReply(ctx.turns, input)
          : streamReply(ctx.turns, ctx.logger, input, request, platform.env.CHAT_SSE_KEEPALIVE_MS);
      },
      {
        body: ChatRequest,
        // 404: `chat_id` names no conversation of the caller's; 429 also the daily message quota.
        response: responses({ 200: ChatReply }, ...SIGNED_IN, ...JSON_BODY, 404, 502),
        detail: {
          summary: "Send a message; the reply streams as the AI SDK UI message stream (SSE)",
          description:
            "With `Accept: application/json` the whole reply comes at once as a `ChatReply`; otherwise the " +
            "reply is a `text/event-stream` of UI message chunks, each with `id: <seq>`, ending with " +
            "`data: [DONE]`; its conversation id is in the `X-Chat-Id` header and its turn's request id " +
            "(for `chat_resume` on the device socket) in `X-Turn-Id`. The turn runs to its end even if the " +
            "client goes away: `GET /chat/{chat_id}/stream` resumes it.",
          responses: {
            200: {
              description: "The reply: streamed (SSE), or whole with `Accept: application/json`",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
          },
        },
      },
    )
    .get(
      "/:chat_id/stream",
      ({ params, headers, user, request }) => resumeReply(ctx, user, params.chat_id, headers["last-event-id"], request),
      {
        params: ChatParams,
        headers: ResumeHeaders,
        response: responses({ 200: z.unknown(), 204: NoContent }, ...SIGNED_IN, 404, 422),
        detail: {
          summary: "Resume the conversation's running turn (the AI SDK's reconnect)",
          description:
            "The running turn's UI message stream from its start, or after `Last-Event-ID` (the `id` of the " +
            "last event received; with it, a turn that ended within CHAT_RESUME_TTL_S is still replayed), " +
            "then live until `data: [DONE]`. 204 when no turn is running: the conversation's messages are " +
            "complete.",
          responses: {
            200: {
              description: "The turn's stream (SSE)",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
          },
        },
      },
    )
    .post(
      "/:chat_id/stop",
      async ({ params, user, set }) => {
        const stopping = await stopTurn(ctx, user, params.chat_id);
        set.status = 202;
        return stopping;
      },
      {
        params: ChatParams,
        // 400: a body that is not JSON (the route takes none, but refuses one it cannot parse).
        response: responses({ 202: StopReply }, ...SIGNED_IN, 400, 404, 409, 422),
        detail: {
          summary: "Stop the conversation's running turn, on whichever instance generates it",
          description:
            "The turn ends with `finish_reason: stopped` (its followers get it) and what it streamed is " +
            "stored as the message. 409 `turn_not_running` when no turn of the conversation is running.",
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

type TurnRequest = Omit<TurnInput, "onChunk" | "onStart" | "transport" | "requestId">;

/**
 * The reply as one JSON object, once the turn is over. The turn is the same resumable turn as a
 * streamed one: a client that goes away does not stop it, and it can be followed meanwhile.
 */
async function wholeReply(turns: ChatTurns, input: TurnRequest): Promise<ChatReply> {
  const result = await turns.run({ ...input, requestId: crypto.randomUUID(), transport: "json" });
  return replyView(result);
}

/**
 * The reply as the AI SDK UI message stream over SSE. The response starts only once the turn is
 * accepted, so validation, 404 and quota errors keep their HTTP status. A client that goes away
 * does not stop the turn: `GET /chat/:chat_id/stream` picks it up again (see resumeReply).
 */
async function streamReply(
  turns: ChatTurns,
  logger: Logger,
  input: TurnRequest,
  request: Request,
  keepAliveMs: number,
): Promise<Response> {
  const sse = new SseWriter(keepAliveMs, request);
  const requestId = crypto.randomUUID();
  const started = Promise.withResolvers<{ chatId: string }>();
  let didStart = false;
  turns
    .run({
      ...input,
      requestId,
      transport: "sse",
      onStart: (turn) => {
        didStart = true;
        started.resolve(turn);
      },
      onChunk: (chunk, seq) => sse.chunk(seq, chunk),
    })
    .then(
      () => sse.end(),
      (error: unknown) => {
        started.reject(error);
        // A turn refused before it started answers with its HTTP status instead (thrown below).
        if (didStart && !sse.gone.aborted) logger.warn({ err: error }, "chat stream failed after it started");
        sse.end(didStart ? "the reply failed" : undefined);
      },
    );
  const { chatId } = await started.promise;
  return sseResponse(sse, chatId, requestId, request);
}

/** The turn's SSE response, naming its conversation and its turn (for `chat_resume`). */
function sseResponse(sse: SseWriter, chatId: string, requestId: string, request: Request): Response {
  return new Response(sse.body, {
    headers: {
      ...UI_MESSAGE_STREAM_HEADERS,
      "x-chat-id": chatId,
      "x-turn-id": requestId,
      "x-request-id": requestIdOf(request),
    },
  });
}

/**
 * `GET /chat/:chat_id/stream`, the AI SDK's resume: the conversation's running turn replayed from
 * its start (or after `Last-Event-ID`) and then followed live; 204 when none runs. With
 * `Last-Event-ID`, a turn that ended since is still replayed while its log is kept, so a reconnect
 * racing the end loses no tail. Another user's conversation, or an unknown one, is a 404.
 */
async function resumeReply(
  ctx: ChatServiceContext,
  user: AuthUser,
  chatId: string,
  lastEventId: string | undefined,
  request: Request,
): Promise<Response> {
  const { turns, engine } = ctx;
  const afterSeq = lastEventId === undefined ? -1 : Number(lastEventId);
  const requestId = await turns.turnOfChat(user.userId, chatId, lastEventId !== undefined);
  if (!requestId) return noTurn(ctx, user, chatId);
  const sse = new SseWriter(ctx.platform.env.CHAT_SSE_KEEPALIVE_MS, request);
  const found = Promise.withResolvers<boolean>();
  const sink = {
    chunk: (seq: number, chunk: unknown) => sse.chunk(seq, chunk),
    end: (end: TurnEnd) => sse.end(end.outcome === "error" ? end.message : undefined),
  };
  turns
    .follow({ userId: user.userId, requestId }, afterSeq, sink, sse.gone, () => found.resolve(true))
    .then(
      (followed) => found.resolve(followed),
      (error: unknown) => {
        engine.logger.warn({ err: error, chat_id: chatId }, "chat resume failed after it started");
        found.resolve(false);
        sse.end("the reply failed");
      },
    );
  if (!(await found.promise)) {
    sse.end(); // nobody reads it: its keep-alive timer stops here
    return noTurn(ctx, user, chatId);
  }
  return sseResponse(sse, chatId, requestId, request);
}

/** No turn to resume: 204 for the caller's conversation, 404 for anyone else's or none. */
async function noTurn(ctx: ChatServiceContext, user: AuthUser, chatId: string): Promise<Response> {
  if (!(await findConversation(ctx.engine.db, user.userId, chatId))) throw notFound("conversation");
  return new Response(null, { status: 204 });
}

/** `POST /chat/:chat_id/stop`: the conversation's running turn stops wherever it runs. */
async function stopTurn(ctx: ChatServiceContext, user: AuthUser, chatId: string): Promise<StopReply> {
  const requestId = await ctx.turns.stopChat(user.userId, chatId);
  if (requestId) return { request_id: requestId, stopping: true };
  if (!(await findConversation(ctx.engine.db, user.userId, chatId))) throw notFound("conversation");
  throw new ServiceError("turn_not_running", 409, "no turn of this conversation is running");
}
