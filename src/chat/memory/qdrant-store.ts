import { QdrantClient } from "@qdrant/js-client-rest";
import { ensureTenantCollection } from "../../shared/qdrant";
import { invalidCursor, UUID } from "../cursor";
import type { Memory, MemoryPage, MemoryStore, NewMemory, ScoredMemory } from "./store";

export interface QdrantStoreOptions {
  url: string;
  apiKey?: string;
  collection: string;
  /** Dimensions of the embedding model, known once the first vector is seen when not given. */
  dimensions?: number;
}

interface MemoryPayload {
  user_id: string;
  text: string;
  created_at: string;
}

/**
 * Memories in one Qdrant collection shared by all users (Qdrant's multitenancy guide): `user_id`
 * is a keyword payload index marked `is_tenant`, and every read, count and delete carries a
 * filter on it, so no request can reach another user's points.
 */
export class QdrantMemoryStore implements MemoryStore {
  readonly kind = "qdrant";
  private readonly client: QdrantClient;
  private ready?: Promise<void>;

  constructor(private readonly options: QdrantStoreOptions) {
    this.client = new QdrantClient({ url: options.url, apiKey: options.apiKey, checkCompatibility: false });
  }

  init(): Promise<void> {
    // Without known dimensions the collection is created on the first write.
    return this.options.dimensions ? this.ensureCollection(this.options.dimensions) : Promise.resolve();
  }

  private ensureCollection(dimensions: number): Promise<void> {
    this.ready ??= ensureTenantCollection(this.client, this.options.collection, dimensions).catch((error) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  private userFilter(userId: string, ids?: string[]) {
    return {
      must: [{ key: "user_id", match: { value: userId } }, ...(ids ? [{ has_id: ids }] : [])],
    };
  }

  async add(userId: string, items: NewMemory[]): Promise<void> {
    const first = items[0];
    if (!first) return;
    await this.ensureCollection(first.vector.length);
    await this.client.upsert(this.options.collection, {
      wait: true,
      points: items.map((item) => ({
        id: item.id,
        vector: item.vector,
        payload: {
          user_id: userId,
          text: item.text,
          created_at: (item.createdAt ?? new Date()).toISOString(),
        } satisfies MemoryPayload,
      })),
    });
  }

  async search(userId: string, vector: number[], limit: number, minScore: number): Promise<ScoredMemory[]> {
    if (limit <= 0) return [];
    await this.ensureCollection(vector.length);
    const { points } = await this.client.query(this.options.collection, {
      query: vector,
      filter: this.userFilter(userId),
      limit,
      score_threshold: minScore,
      with_payload: true,
    });
    return points.map((point) => ({ ...toMemory(point.id, point.payload), score: point.score }));
  }

  async list(userId: string, limit: number, cursor?: string): Promise<MemoryPage> {
    if (cursor !== undefined && !UUID.test(cursor)) throw invalidCursor();
    if (!(await this.exists())) return { items: [] };
    const page = await this.client.scroll(this.options.collection, {
      filter: this.userFilter(userId),
      limit,
      offset: cursor,
      with_payload: true,
      with_vector: false,
    });
    const next = page.next_page_offset;
    return {
      items: page.points.map((point) => toMemory(point.id, point.payload)),
      nextCursor: typeof next === "string" || typeof next === "number" ? String(next) : undefined,
    };
  }

  async delete(userId: string, id: string): Promise<boolean> {
    if (!UUID.test(id) || !(await this.exists())) return false;
    const filter = this.userFilter(userId, [id]);
    const { count } = await this.client.count(this.options.collection, { filter, exact: true });
    if (count === 0) return false;
    await this.client.delete(this.options.collection, { wait: true, filter });
    return true;
  }

  async deleteAll(userId: string): Promise<number> {
    if (!(await this.exists())) return 0;
    const filter = this.userFilter(userId);
    const { count } = await this.client.count(this.options.collection, { filter, exact: true });
    if (count > 0) await this.client.delete(this.options.collection, { wait: true, filter });
    return count;
  }

  /** Delete by the tenant filter, waiting until Qdrant has applied it; nothing to do without a collection. */
  async deleteUser(userId: string): Promise<void> {
    if (!(await this.exists())) return;
    await this.client.delete(this.options.collection, { wait: true, filter: this.userFilter(userId) });
  }

  private async exists(): Promise<boolean> {
    if (this.ready) {
      await this.ready;
      return true;
    }
    return (await this.client.collectionExists(this.options.collection)).exists;
  }
}

function toMemory(id: string | number, payload: Record<string, unknown> | null | undefined): Memory {
  const data = (payload ?? {}) as Partial<MemoryPayload>;
  return { id: String(id), text: String(data.text ?? ""), createdAt: new Date(data.created_at ?? 0) };
}
