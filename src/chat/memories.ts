import { notFound } from "../shared/errors";
import type { ChatCtx } from "./list-conversations";
import type { Memory } from "./memory/store";
import type { PageQuery } from "./model";

const memoryView = (memory: Memory) => ({
  id: memory.id,
  text: memory.text,
  created_at: memory.createdAt.toISOString(),
});

/** What the assistant remembers about the caller. */
export async function listMemories({ ctx, input }: { ctx: ChatCtx; input: PageQuery }) {
  const page = await ctx.engine.memory.store.list(ctx.user.userId, input.limit, input.cursor);
  return { items: page.items.map(memoryView), next_cursor: page.nextCursor ?? null };
}

/** Forgets one memory; another user's id is 404 like a missing one. */
export async function deleteMemory({ ctx, input }: { ctx: ChatCtx; input: { id: string } }) {
  const deleted = await ctx.engine.memory.store.delete(ctx.user.userId, input.id);
  if (!deleted) throw notFound("memory");
  return { deleted: 1 };
}

/** Forgets everything about the caller. */
export async function deleteAllMemories({ ctx }: { ctx: ChatCtx }) {
  return { deleted: await ctx.engine.memory.store.deleteAll(ctx.user.userId) };
}
