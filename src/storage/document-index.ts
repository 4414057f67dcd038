import { QdrantClient } from "@qdrant/js-client-rest";
import { and, eq } from "drizzle-orm";
import type { Database } from "../shared/db";
import { cosine } from "../shared/llm/cosine";
import { ensureTenantCollection } from "../shared/qdrant";
import { documentChunks } from "./tables";

export interface NewChunk {
  id: string;
  position: number;
  text: string;
  vector: number[];
}

export interface ChunkHit {
  objectId: string;
  text: string;
  score: number;
}

/**
 * The indexed chunks of every user's documents. Every method takes the user id and never reaches
 * another user's chunks. Adapters: Qdrant (QDRANT_URL, collection QDRANT_DOCUMENTS_COLLECTION) and
 * storage.document_chunks in PostgreSQL.
 */
export interface DocumentIndex {
  readonly kind: string;
  /** Replaces the object's chunks with these. */
  replace(userId: string, objectId: string, chunks: NewChunk[]): Promise<void>;
  search(userId: string, vector: number[], limit: number): Promise<ChunkHit[]>;
  removeObject(userId: string, objectId: string): Promise<void>;
  removeUser(userId: string): Promise<void>;
}

/** Chunks scanned per search in PostgreSQL; bounds the worst case of the in-process similarity. */
const SCAN_LIMIT = 20_000;

export class PgDocumentIndex implements DocumentIndex {
  readonly kind = "postgres";
  constructor(private readonly db: Database) {}

  async replace(userId: string, objectId: string, chunks: NewChunk[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx
        .delete(documentChunks)
        .where(and(eq(documentChunks.userId, userId), eq(documentChunks.objectId, objectId)));
      if (chunks.length === 0) return;
      await tx.insert(documentChunks).values(
        chunks.map((chunk) => ({
          id: chunk.id,
          userId,
          objectId,
          position: chunk.position,
          text: chunk.text,
          embedding: chunk.vector,
        })),
      );
    });
  }

  async search(userId: string, vector: number[], limit: number): Promise<ChunkHit[]> {
    const rows = await this.db.select().from(documentChunks).where(eq(documentChunks.userId, userId)).limit(SCAN_LIMIT);
    return rows
      .map((row) => ({ objectId: row.objectId, text: row.text, score: cosine(vector, row.embedding) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, limit);
  }

  async removeObject(userId: string, objectId: string): Promise<void> {
    await this.db
      .delete(documentChunks)
      .where(and(eq(documentChunks.userId, userId), eq(documentChunks.objectId, objectId)));
  }

  async removeUser(userId: string): Promise<void> {
    await this.db.delete(documentChunks).where(eq(documentChunks.userId, userId));
  }
}

interface ChunkPayload {
  user_id: string;
  object_id: string;
  position: number;
  text: string;
}

/**
 * Chunks in one Qdrant collection shared by all users, as chat's memories are: `user_id` is a
 * keyword payload index marked `is_tenant`, and every query and delete filters on it.
 */
export class QdrantDocumentIndex implements DocumentIndex {
  readonly kind = "qdrant";
  private readonly client: QdrantClient;
  private ready?: Promise<void>;

  constructor(private readonly options: { url: string; apiKey?: string; collection: string }) {
    this.client = new QdrantClient({ url: options.url, apiKey: options.apiKey, checkCompatibility: false });
  }

  private ensureCollection(dimensions: number): Promise<void> {
    this.ready ??= ensureTenantCollection(this.client, this.options.collection, dimensions, ["object_id"]).catch(
      (error) => {
        this.ready = undefined;
        throw error;
      },
    );
    return this.ready;
  }

  private filter(userId: string, objectId?: string) {
    return {
      must: [
        { key: "user_id", match: { value: userId } },
        ...(objectId ? [{ key: "object_id", match: { value: objectId } }] : []),
      ],
    };
  }

  async replace(userId: string, objectId: string, chunks: NewChunk[]): Promise<void> {
    await this.removeObject(userId, objectId);
    const first = chunks[0];
    if (!first) return;
    await this.ensureCollection(first.vector.length);
    await this.client.upsert(this.options.collection, {
      wait: true,
      points: chunks.map((chunk) => ({
        id: chunk.id,
        vector: chunk.vector,
        payload: {
          user_id: userId,
          object_id: objectId,
          position: chunk.position,
          text: chunk.text,
        } satisfies ChunkPayload,
      })),
    });
  }

  async search(userId: string, vector: number[], limit: number): Promise<ChunkHit[]> {
    if (!(await this.exists())) return [];
    const { points } = await this.client.query(this.options.collection, {
      query: vector,
      filter: this.filter(userId),
      limit,
      with_payload: true,
    });
    return points.map((point) => {
      const payload = (point.payload ?? {}) as Partial<ChunkPayload>;
      return { objectId: String(payload.object_id ?? ""), text: String(payload.text ?? ""), score: point.score };
    });
  }

  async removeObject(userId: string, objectId: string): Promise<void> {
    if (!(await this.exists())) return;
    await this.client.delete(this.options.collection, { wait: true, filter: this.filter(userId, objectId) });
  }

  async removeUser(userId: string): Promise<void> {
    if (!(await this.exists())) return;
    await this.client.delete(this.options.collection, { wait: true, filter: this.filter(userId) });
  }

  private async exists(): Promise<boolean> {
    if (this.ready) {
      await this.ready;
      return true;
    }
    return (await this.client.collectionExists(this.options.collection)).exists;
  }
}
