import type { VerbArgs } from "../shared/verb";
import type { ChatServiceContext } from "./context";
import { type ConversationRow, pageConversations } from "./history";
import type { PageQuery } from "./model";

export const conversationView = (row: ConversationRow) => ({
  id: row.id,
  title: row.title,
  surface: row.surface,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

/** The caller's conversations, most recently active first. */
export async function listConversations({ ctx, user, input }: VerbArgs<ChatServiceContext, PageQuery>) {
  const page = await pageConversations(ctx.engine.db, user.userId, input.limit, input.cursor);
  return { items: page.items.map(conversationView), next_cursor: page.nextCursor ?? null };
}
