import type { AuthUser } from "../shared/auth/verifier";
import type { ChatEngine } from "./engine";
import { type ConversationRow, pageConversations } from "./history";
import type { PageQuery } from "./model";

export interface ChatCtx {
  engine: ChatEngine;
  user: AuthUser;
}

export const conversationView = (row: ConversationRow) => ({
  id: row.id,
  title: row.title,
  surface: row.surface,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

/** The caller's conversations, most recently active first. */
export async function listConversations({ ctx, input }: { ctx: ChatCtx; input: PageQuery }) {
  const page = await pageConversations(ctx.engine.db, ctx.user.userId, input.limit, input.cursor);
  return { items: page.items.map(conversationView), next_cursor: page.nextCursor ?? null };
}
