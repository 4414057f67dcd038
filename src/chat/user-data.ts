import { asc, eq, inArray } from "drizzle-orm";
import { withTimeout } from "../shared/timeout";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import type { ChatServiceContext } from "./context";
import type { Memory } from "./memory/store";
import { conversations, memories, messages, usage } from "./tables";

/** How long an erasure waits for the user's stopped turns to end and store what they had. */
const TURNS_STOP_WAIT_MS = 10_000;
const MEMORY_PAGE = 500;

/**
 * Erases everything chat holds of a user: running turns are stopped first (and given time to end,
 * so a turn storing its reply cannot write after the erasure), then conversations and their
 * messages, usage, and memories in PostgreSQL and in the memory store (Qdrant: delete by the
 * tenant filter). Turn logs in Redis expire on their own (CHAT_RESUME_TTL_S). Idempotent.
 */
export async function eraseUser(ctx: ChatServiceContext, userId: string): Promise<void> {
  await stopTurns(ctx, userId);
  await withTimeout(ctx.engine.memory.idle(), 5000, "memory extraction").catch(() => undefined);
  const { db } = ctx.engine;
  await db.transaction(async (tx) => {
    await tx.delete(conversations).where(eq(conversations.userId, userId));
    await tx.delete(usage).where(eq(usage.userId, userId));
    await tx.delete(memories).where(eq(memories.userId, userId));
  });
  await ctx.engine.memory.store.deleteUser(userId);
}

/** Stops each of the user's running turns wherever it runs, then waits (bounded) until none runs. */
async function stopTurns(ctx: ChatServiceContext, userId: string): Promise<void> {
  const { turns } = ctx;
  const running = await turns.log.running(userId);
  if (running.length === 0) return;
  await Promise.all(running.map((turn) => turns.stop({ userId, requestId: turn.requestId })));
  const deadline = Date.now() + TURNS_STOP_WAIT_MS;
  while (Date.now() < deadline && (await turns.log.running(userId)).length > 0) await Bun.sleep(100);
  ctx.logger.info({ user_id: userId, turns: running.length }, "turns of a deleted account stopped");
}

/** The user's conversations with their messages, memories and daily usage. */
export async function exportUser(ctx: ChatServiceContext, userId: string) {
  const { db } = ctx.engine;
  const chats = await db
    .select()
    .from(conversations)
    .where(eq(conversations.userId, userId))
    .orderBy(asc(conversations.createdAt));
  const rows = chats.length
    ? await db
        .select()
        .from(messages)
        .where(
          inArray(
            messages.conversationId,
            chats.map((chat) => chat.id),
          ),
        )
        .orderBy(asc(messages.seq))
    : [];
  const days = await db.select().from(usage).where(eq(usage.userId, userId)).orderBy(asc(usage.day));
  return {
    conversations: chats.map((chat) => ({
      id: chat.id,
      surface: chat.surface,
      title: chat.title,
      created_at: chat.createdAt.toISOString(),
      updated_at: chat.updatedAt.toISOString(),
      messages: rows
        .filter((row) => row.conversationId === chat.id)
        .map((row) => ({
          id: row.id,
          role: row.role,
          parts: row.parts,
          status: row.status,
          context: row.context,
          input_tokens: row.inputTokens,
          output_tokens: row.outputTokens,
          created_at: row.createdAt.toISOString(),
        })),
    })),
    memories: (await allMemories(ctx, userId)).map((memory) => ({
      id: memory.id,
      text: memory.text,
      created_at: memory.createdAt.toISOString(),
    })),
    usage: days.map((day) => ({
      day: day.day,
      messages: day.messages,
      input_tokens: day.inputTokens,
      output_tokens: day.outputTokens,
    })),
  };
}

async function allMemories(ctx: ChatServiceContext, userId: string): Promise<Memory[]> {
  const all: Memory[] = [];
  let cursor: string | undefined;
  do {
    const page = await ctx.engine.memory.store.list(userId, MEMORY_PAGE, cursor);
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/** Chat's consumers of account deletions and export requests (group "chat"). */
export function startChatUserData(ctx: ChatServiceContext): Promise<UserDataConsumers> {
  return startUserDataConsumers(ctx.platform, ctx.logger, {
    service: "chat",
    erase: (userId) => eraseUser(ctx, userId),
    export: (userId) => exportUser(ctx, userId),
  });
}
