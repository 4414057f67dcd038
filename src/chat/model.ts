import { z } from "zod";
import { ChatUsage, ChatContext as ProtocolChatContext, Surface } from "../protocol";
import { named } from "../shared/contract";

export { Surface } from "../protocol";

/** `ws_context`, defined with the device protocol (the socket's `chat` frame carries it too). */
export const ChatContext = named("ChatContext", ProtocolChatContext);
export type ChatContext = z.infer<typeof ChatContext>;

/** `text` length is checked by the sanitizer against CHAT_MAX_INPUT_CHARS; this cap stops abuse early. */
export const ChatRequest = named(
  "ChatRequest",
  z
    .object({
      text: z.string().min(1).max(100_000),
      chat_id: z.uuid().optional(),
      surface: Surface.default("home"),
      context: ChatContext.optional(),
    })
    .strict(),
);
export type ChatRequest = z.infer<typeof ChatRequest>;

export const ConversationParams = z.object({ id: z.uuid() });
export type ConversationParams = z.infer<typeof ConversationParams>;

/** A conversation named in the path of its turn's routes (`/chat/:chat_id/stream`, `/stop`). */
export const ChatParams = z.object({ chat_id: z.uuid() });
export type ChatParams = z.infer<typeof ChatParams>;

/**
 * `Last-Event-ID` of an SSE reconnect: the `id` (the chunk's seq) of the last event the client got.
 * Bounded digits, so a hostile header is a 422, never a parse of anything else.
 */
export const ResumeHeaders = z.object({
  "last-event-id": z
    .string()
    .regex(/^\d{1,15}$/, "a chunk seq")
    .optional(),
});

/** `POST /chat/:chat_id/stop`: the turn that was asked to stop (it ends with finish_reason `stopped`). */
export const StopReply = named("StopReply", z.object({ request_id: z.string(), stopping: z.literal(true) }));
export type StopReply = z.infer<typeof StopReply>;

export const MemoryParams = z.object({ id: z.uuid() });
export type MemoryParams = z.infer<typeof MemoryParams>;

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});
export type PageQuery = z.infer<typeof PageQuery>;

/** Token usage of a turn: the same in the JSON reply, the SSE stream's end and `chat_done`. */
const Usage = named("Usage", ChatUsage);

/** `POST /chat` with `Accept: application/json`: the whole reply at once. */
export const ChatReply = named(
  "ChatReply",
  z.object({
    chat_id: z.string(),
    message_id: z.string(),
    text: z.string(),
    /** AI SDK UI message parts (text, tool calls with their input and output or error). */
    parts: z.array(z.unknown()),
    finish_reason: z.string(),
    usage: Usage,
  }),
);
export type ChatReply = z.infer<typeof ChatReply>;

export const Conversation = named(
  "Conversation",
  z.object({
    id: z.string(),
    title: z.string(),
    surface: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  }),
);
export type Conversation = z.infer<typeof Conversation>;

export const ConversationPage = named(
  "ConversationPage",
  z.object({ items: z.array(Conversation), next_cursor: z.string().nullable() }),
);

export const Message = named(
  "Message",
  z.object({
    id: z.string(),
    role: z.string(),
    parts: z.array(z.unknown()),
    status: z.string(),
    /** The screen context sent with a floating-chat message. */
    context: ChatContext.optional(),
    /** Assistant messages only. */
    usage: z.object({ input_tokens: z.number().nullable(), output_tokens: z.number().nullable() }).optional(),
    created_at: z.string(),
  }),
);
export type Message = z.infer<typeof Message>;

/** One conversation with a page of its messages. */
export const ConversationDetail = named(
  "ConversationDetail",
  Conversation.extend({ messages: z.array(Message), next_cursor: z.string().nullable() }),
);

export const Memory = named("Memory", z.object({ id: z.string(), text: z.string(), created_at: z.string() }));

export const MemoryPage = named("MemoryPage", z.object({ items: z.array(Memory), next_cursor: z.string().nullable() }));

export const Deleted = named("Deleted", z.object({ deleted: z.number() }));

/** `GET /api/v1/ws/device/tools.json`: the tools a device may be asked to run, as JSON Schema. */
export const DeviceTools = named(
  "DeviceTools",
  z.object({
    protocol: z.number(),
    tools: z.array(
      z.object({
        name: z.string(),
        description: z.string(),
        callers: z.array(z.string()),
        idempotency_key: z.boolean(),
        args: z.record(z.string(), z.unknown()),
        result: z.record(z.string(), z.unknown()),
      }),
    ),
  }),
);
