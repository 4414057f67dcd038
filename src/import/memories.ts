import { QdrantClient } from "@qdrant/js-client-rest";
import { embedMany } from "ai";
import { inArray } from "drizzle-orm";
import type { MemoryStore, NewMemory } from "../chat/memory/store";
import { memories } from "../chat/tables";
import type { Database } from "../shared/db";
import type { Llm } from "../shared/llm";
import { MemoryLine } from "./formats";
import { legacyUuid } from "./ids";
import type { Numbered } from "./jsonl";
import { knownUsers, missingUser } from "./known-users";
import type { Outcome } from "./report";
import { firstSeen, outcomeOf, type Stage } from "./stage";

interface StoredMemory {
  userId: string;
  text: string;
}

/**
 * Reads what the chat service's memory store already holds, by id: the store's interface has no
 * lookup by id, and a re-run must not embed again what is already there.
 */
export interface StoredMemories {
  find(tx: Database, ids: string[]): Promise<Map<string, StoredMemory>>;
}

/** chat.memories, read in the batch's transaction (PgMemoryStore's table). */
export const storedInPostgres: StoredMemories = {
  async find(tx, ids) {
    const rows = await tx
      .select({ id: memories.id, userId: memories.userId, text: memories.text })
      .from(memories)
      .where(inArray(memories.id, ids));
    return new Map(rows.map((row) => [row.id, { userId: row.userId, text: row.text }] as const));
  },
};

/** The points of the Qdrant collection QdrantMemoryStore writes (payload `user_id`, `text`). */
export function storedInQdrant(options: { url: string; apiKey?: string; collection: string }): StoredMemories {
  const client = new QdrantClient({ url: options.url, apiKey: options.apiKey, checkCompatibility: false });
  return {
    async find(_tx, ids) {
      if (!(await client.collectionExists(options.collection)).exists) return new Map();
      const points = await client.retrieve(options.collection, { ids, with_payload: true, with_vector: false });
      return new Map(
        points.map((point) => {
          const payload = (point.payload ?? {}) as { user_id?: string; text?: string };
          return [String(point.id), { userId: String(payload.user_id), text: String(payload.text) }] as const;
        }),
      );
    },
  };
}

export interface MemoriesStageOptions {
  store: MemoryStore;
  stored: StoredMemories;
  /** Unused in a dry run, which embeds nothing. */
  llm: Llm;
  dryRun: boolean;
}

/**
 * memories.jsonl → the chat service's memory store (Qdrant when QDRANT_URL is set, else
 * chat.memories), each text embedded again with this deployment's embedding model, one request per
 * batch. The store is not transactional: a memory is written whole or not at all, and a re-run
 * writes only what is missing or different.
 */
export function memoriesStage(options: MemoriesStageOptions): Stage<typeof MemoryLine> {
  const sameId = firstSeen("id");
  return {
    entity: "memories",
    schema: MemoryLine,
    batchSize: 256,
    admit: (memory, line) => sameId(memory.id, line),
    apply: (tx, lines) => applyMemories(tx, options, lines),
  };
}

interface Pending {
  index: number;
  id: string;
  userId: string;
  text: string;
  createdAt: Date | undefined;
  /** Where it is stored now, when a changed memory must leave it first. */
  replaces?: StoredMemory;
}

async function applyMemories(
  tx: Database,
  options: MemoriesStageOptions,
  lines: Array<Numbered<MemoryLine>>,
): Promise<Outcome[]> {
  const known = await knownUsers(
    tx,
    lines.map((line) => line.value.user_id),
  );
  const ids = lines.map((line) => legacyUuid("memory", line.value.id));
  const existing = await options.stored.find(tx, ids);
  const outcomes: Outcome[] = [];
  const pending: Pending[] = [];
  for (const [index, { value }] of lines.entries()) {
    const userId = known.idOf(value.user_id);
    if (!userId) {
      outcomes.push(missingUser(value.user_id));
      continue;
    }
    const id = ids[index] as string;
    const stored = existing.get(id);
    const outcome = outcomeOf(stored, (memory) => memory.userId !== userId || memory.text !== value.text);
    if (outcome !== "unchanged")
      pending.push({ index, id, userId, text: value.text, createdAt: value.created_at, replaces: stored });
    outcomes.push(outcome);
  }
  if (options.dryRun || pending.length === 0) return outcomes;
  try {
    await writeMemories(options, pending);
  } catch (error) {
    // Embedding or the store failed for the whole batch: nothing of it counts as written, and a
    // re-run picks it up (writes are by id, so whatever did land is not duplicated).
    const reason = `not stored: ${error instanceof Error ? error.message : String(error)}`;
    for (const memory of pending) outcomes[memory.index] = { skipped: reason };
  }
  return outcomes;
}

async function writeMemories(options: MemoriesStageOptions, pending: Pending[]): Promise<void> {
  const { embeddings } = await embedMany({
    model: options.llm.embeddingModel,
    values: pending.map((memory) => memory.text),
  });
  const byUser = new Map<string, NewMemory[]>();
  for (const [position, memory] of pending.entries()) {
    const vector = embeddings[position];
    if (!vector) throw new Error("the embedding model returned fewer vectors than texts");
    // A store keeps the first write of an id: a changed memory is removed, then added again.
    if (memory.replaces) await options.store.delete(memory.replaces.userId, memory.id);
    const items = byUser.get(memory.userId) ?? [];
    items.push({ id: memory.id, text: memory.text, vector, createdAt: memory.createdAt });
    byUser.set(memory.userId, items);
  }
  for (const [userId, items] of byUser) await options.store.add(userId, items);
}
