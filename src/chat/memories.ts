import { notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { ChatServiceContext } from "./context";
import type { Memory } from "./memory/store";
import type { PageQuery } from "./model";

const memoryView = (memory: Memory) => ({
  id: memory.id,
  text: memory.text,
  created_at: memory.createdAt.toISOString(),
});

/** What the assistant remembers about the caller. */
export async function listMemories({ ctx, user, input }: VerbArgs<ChatServiceContext, PageQuery>) {
  const page = await ctx.engine.memory.store.list(user.userId, input.limit, input.cursor);
  return { items: page.items.map(memoryView), next_cursor: page.nextCursor ?? null };
}

/** Forgets one memory; another user's id is 404 like a missing one. */
export async function deleteMemory({ ctx, user, input }: VerbArgs<ChatServiceContext, { id: string }>) {
  const deleted = await ctx.engine.memory.store.delete(user.userId, input.id);
  if (!deleted) throw notFound("memory");
  return { deleted: 1 };
}

/** Forgets everything about the caller. */
export async function deleteAllMemories({ ctx, user }: VerbArgs<ChatServiceContext>) {
  return { deleted: await ctx.engine.memory.store.deleteAll(user.userId) };
}
