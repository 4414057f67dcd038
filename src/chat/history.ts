import type { UIMessage } from "ai";
import { and, desc, eq, lt, or, sql } from "drizzle-orm";
import type { Database } from "../shared/db";
import { decodeCursor, decodeTimeCursor, encodeCursor, invalidCursor } from "./cursor";
import type { ChatContext, Surface } from "./model";
import { conversations, messages, usage } from "./tables";

export type ConversationRow = typeof conversations.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;

/** The user's conversation, or undefined when it does not exist or belongs to someone else. */
export async function findConversation(db: Database, userId: string, id: string): Promise<ConversationRow | undefined> {
  const [row] = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)));
  return row;
}

export async function createConversation(
  db: Database,
  input: { id: string; userId: string; surface: Surface; title: string },
): Promise<void> {
  const now = new Date();
  await db.insert(conversations).values({ ...input, createdAt: now, updatedAt: now });
}

export async function saveMessage(
  db: Database,
  input: {
    id: string;
    conversationId: string;
    role: "user" | "assistant";
    parts: unknown[];
    status?: string;
    context?: ChatContext;
    inputTokens?: number;
    outputTokens?: number;
  },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.insert(messages).values({ ...input, createdAt: new Date() });
    await tx.update(conversations).set({ updatedAt: new Date() }).where(eq(conversations.id, input.conversationId));
  });
}

/** A finished turn as stored: the conversation when the turn started it, the user's message, the reply. */
export interface StoredTurn {
  conversation?: { id: string; userId: string; surface: Surface; title: string; createdAt: Date };
  user: { id: string; conversationId: string; parts: unknown[]; context?: ChatContext; createdAt: Date };
  assistant: {
    id: string;
    conversationId: string;
    parts: unknown[];
    status: string;
    inputTokens: number;
    outputTokens: number;
    createdAt: Date;
  };
}

/**
 * Writes a finished turn in one transaction, idempotently: rows the turn wrote as it started (the
 * conversation, the user's message) are left as they are, so the write can be repeated until it
 * lands without duplicating anything.
 */
export async function storeTurn(db: Database, turn: StoredTurn): Promise<void> {
  await db.transaction(async (tx) => {
    if (turn.conversation) {
      await tx
        .insert(conversations)
        .values({ ...turn.conversation, updatedAt: turn.conversation.createdAt })
        .onConflictDoNothing();
    }
    await tx
      .insert(messages)
      .values({ ...turn.user, role: "user" })
      .onConflictDoNothing();
    await tx
      .insert(messages)
      .values({ ...turn.assistant, role: "assistant" })
      .onConflictDoNothing();
    await tx
      .update(conversations)
      .set({ updatedAt: new Date() })
      .where(eq(conversations.id, turn.assistant.conversationId));
  });
}

/** The last `limit` messages as UI messages, oldest first, for the model's context. */
export async function recentMessages(db: Database, conversationId: string, limit: number): Promise<UIMessage[]> {
  if (limit <= 0) return [];
  const rows = await db
    .select({ id: messages.id, role: messages.role, parts: messages.parts })
    .from(messages)
    .where(eq(messages.conversationId, conversationId))
    .orderBy(desc(messages.seq))
    .limit(limit);
  return rows
    .reverse()
    .map((row) => ({ id: row.id, role: row.role as UIMessage["role"], parts: row.parts as UIMessage["parts"] }));
}

export async function recordUsage(
  db: Database,
  userId: string,
  day: string,
  delta: { messages: number; inputTokens: number; outputTokens: number },
): Promise<void> {
  await db
    .insert(usage)
    .values({ userId, day, ...delta })
    .onConflictDoUpdate({
      target: [usage.userId, usage.day],
      set: {
        messages: sql`${usage.messages} + ${delta.messages}`,
        inputTokens: sql`${usage.inputTokens} + ${delta.inputTokens}`,
        outputTokens: sql`${usage.outputTokens} + ${delta.outputTokens}`,
      },
    });
}

/** The user's conversations, most recently active first, keyset-paginated. */
export async function pageConversations(db: Database, userId: string, limit: number, cursor?: string) {
  const after = cursor ? decodeTimeCursor(cursor) : undefined;
  const rows = await db
    .select()
    .from(conversations)
    .where(
      and(
        eq(conversations.userId, userId),
        after
          ? or(
              lt(conversations.updatedAt, after.at),
              and(eq(conversations.updatedAt, after.at), lt(conversations.id, after.id)),
            )
          : undefined,
      ),
    )
    .orderBy(desc(conversations.updatedAt), desc(conversations.id))
    .limit(limit + 1);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor(last.updatedAt.toISOString(), last.id) : undefined,
  };
}

/** One page of a conversation's messages, newest page first, each page in chronological order. */
export async function pageMessages(db: Database, conversationId: string, limit: number, cursor?: string) {
  const before = cursor ? Number(decodeCursor(cursor).key) : undefined;
  if (before !== undefined && !(Number.isSafeInteger(before) && before > 0)) throw invalidCursor();
  const rows = await db
    .select()
    .from(messages)
    .where(
      and(eq(messages.conversationId, conversationId), before !== undefined ? lt(messages.seq, before) : undefined),
    )
    .orderBy(desc(messages.seq))
    .limit(limit + 1);
  const items = rows.slice(0, limit).reverse();
  const oldest = items[0];
  return {
    items,
    nextCursor: rows.length > limit && oldest ? encodeCursor(String(oldest.seq), oldest.id) : undefined,
  };
}
