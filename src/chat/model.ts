import { z } from "zod";

export const Surface = z.enum(["home", "floating"]);
export type Surface = z.infer<typeof Surface>;

const short = (max: number) => z.string().max(max);

/**
 * `ws_context`: what the user is looking at when they open the floating chat, sent by the device.
 * Every field is bounded; the whole object is data for the model, never instructions.
 */
export const ChatContext = z
  .object({
    app: short(200),
    window_title: short(500),
    url: short(2000),
    selection: short(4000),
    /** The entity on screen, e.g. a task or note the user is editing. */
    item: z.object({ type: short(50), id: short(200), title: short(500).optional() }),
  })
  .partial()
  .strict();
export type ChatContext = z.infer<typeof ChatContext>;

/** `text` length is checked by the sanitizer against CHAT_MAX_INPUT_CHARS; this cap stops abuse early. */
export const ChatRequest = z
  .object({
    text: z.string().min(1).max(100_000),
    chat_id: z.uuid().optional(),
    surface: Surface.default("home"),
    context: ChatContext.optional(),
  })
  .strict();
export type ChatRequest = z.infer<typeof ChatRequest>;

export const ConversationParams = z.object({ id: z.uuid() });
export type ConversationParams = z.infer<typeof ConversationParams>;

export const MemoryParams = z.object({ id: z.uuid() });
export type MemoryParams = z.infer<typeof MemoryParams>;

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});
export type PageQuery = z.infer<typeof PageQuery>;

/** Device -> server `chat` frame. */
export const ChatFrame = z.object({
  type: z.literal("chat"),
  request_id: z.string().min(1).max(128),
  chat_id: z.uuid().optional(),
  surface: Surface.default("home"),
  text: z.string().min(1).max(100_000),
  context: ChatContext.optional(),
});
export type ChatFrame = z.infer<typeof ChatFrame>;

export const ChatCancelFrame = z.object({
  type: z.literal("chat_cancel"),
  request_id: z.string().min(1).max(128),
});
export type ChatCancelFrame = z.infer<typeof ChatCancelFrame>;
