import { notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { ChatServiceContext } from "./context";
import { findConversation, type MessageRow, pageMessages } from "./history";
import { conversationView } from "./list-conversations";
import type { ChatContext, PageQuery } from "./model";

const messageView = (row: MessageRow) => ({
  id: row.id,
  role: row.role,
  parts: row.parts as unknown[],
  status: row.status,
  ...(row.context ? { context: row.context as ChatContext } : {}),
  ...(row.role === "assistant" ? { usage: { input_tokens: row.inputTokens, output_tokens: row.outputTokens } } : {}),
  created_at: row.createdAt.toISOString(),
});

/** One of the caller's conversations with a page of its messages; anyone else's is 404. */
export async function getConversation({ ctx, user, input }: VerbArgs<ChatServiceContext, PageQuery & { id: string }>) {
  const conversation = await findConversation(ctx.engine.db, user.userId, input.id);
  if (!conversation) throw notFound("conversation");
  const page = await pageMessages(ctx.engine.db, conversation.id, input.limit, input.cursor);
  return {
    ...conversationView(conversation),
    messages: page.items.map(messageView),
    next_cursor: page.nextCursor ?? null,
  };
}
