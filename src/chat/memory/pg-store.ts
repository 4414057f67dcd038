import { and, desc, eq, lt, or } from "drizzle-orm";
import type { Database } from "../../shared/db";
import { cosine } from "../../shared/llm/cosine";
import { decodeTimeCursor, encodeCursor } from "../cursor";
import { memories } from "../tables";
import type { MemoryPage, MemoryStore, NewMemory, ScoredMemory } from "./store";

/** Memories scanned per search; a user's memory is small, and this bounds the worst case. */
const SCAN_LIMIT = 5000;

/**
 * The local store: rows in chat.memories, similarity computed in process over the user's rows.
 * Good for development and small deployments; Qdrant takes over when QDRANT_URL is set.
 */
export class PgMemoryStore implements MemoryStore {
  readonly kind = "postgres";
  constructor(private readonly db: Database) {}

  async init(): Promise<void> {}

  async add(userId: string, items: NewMemory[]): Promise<void> {
    if (items.length === 0) return;
    await this.db
      .insert(memories)
      .values(
        items.map((item) => ({
          id: item.id,
          userId,
          text: item.text,
          embedding: item.vector,
          createdAt: item.createdAt ?? new Date(),
        })),
      )
      .onConflictDoNothing();
  }

  async search(userId: string, vector: number[], limit: number, minScore: number): Promise<ScoredMemory[]> {
    if (limit <= 0) return [];
    const rows = await this.db
      .select()
      .from(memories)
      .where(eq(memories.userId, userId))
      .orderBy(desc(memories.createdAt))
      .limit(SCAN_LIMIT);
    return rows
      .map((row) => ({ id: row.id, text: row.text, createdAt: row.createdAt, score: cosine(vector, row.embedding) }))
      .filter((row) => row.score >= minScore)
      .sort((a, b) => b.score - a.score)
      .slice(0, limit);
  }

  async list(userId: string, limit: number, cursor?: string): Promise<MemoryPage> {
    const after = cursor ? decodeTimeCursor(cursor) : undefined;
    const rows = await this.db
      .select({ id: memories.id, text: memories.text, createdAt: memories.createdAt })
      .from(memories)
      .where(
        and(
          eq(memories.userId, userId),
          after
            ? or(lt(memories.createdAt, after.at), and(eq(memories.createdAt, after.at), lt(memories.id, after.id)))
            : undefined,
        ),
      )
      .orderBy(desc(memories.createdAt), desc(memories.id))
      .limit(limit + 1);
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    return {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt.toISOString(), last.id) : undefined,
    };
  }

  async delete(userId: string, id: string): Promise<boolean> {
    const deleted = await this.db
      .delete(memories)
      .where(and(eq(memories.userId, userId), eq(memories.id, id)))
      .returning({ id: memories.id });
    return deleted.length > 0;
  }

  async deleteAll(userId: string): Promise<number> {
    const deleted = await this.db.delete(memories).where(eq(memories.userId, userId)).returning({ id: memories.id });
    return deleted.length;
  }

  async deleteUser(userId: string): Promise<void> {
    await this.db.delete(memories).where(eq(memories.userId, userId));
  }
}
