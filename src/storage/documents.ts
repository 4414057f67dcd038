import { embed, embedMany } from "ai";
import { and, eq, inArray } from "drizzle-orm";
import { ServiceError } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { StorageContext } from "./context";
import type { IndexResult, SearchInput, SearchResult } from "./model";
import { objectKey } from "./object-store";
import { readyObject } from "./objects";
import { objects } from "./tables";
import { storeCall } from "./uploads";

/** Characters per chunk, and how many of them the next chunk repeats, so a passage cut in two is still found. */
export const CHUNK_CHARS = 1000;
export const CHUNK_OVERLAP = 200;
/** Documents larger than this are not indexed: the whole text is read into memory to chunk it. */
export const MAX_INDEXED_BYTES = 4 * 1024 * 1024;
/** Chunks embedded per model call. */
const EMBED_BATCH = 64;

const INDEXABLE = /^(text\/[\w.+-]+|application\/(json|xml|x-ndjson|markdown))(\s*;.*)?$/i;

/** Splits text into chunks of at most `size` characters, each repeating the last `overlap` of the one before. */
export function chunkText(text: string, size = CHUNK_CHARS, overlap = CHUNK_OVERLAP): string[] {
  const clean = text.replace(/\r\n/g, "\n").trim();
  if (clean.length === 0) return [];
  const chunks: string[] = [];
  for (let start = 0; start < clean.length; start += size - overlap) {
    chunks.push(clean.slice(start, start + size));
    if (start + size >= clean.length) break;
  }
  return chunks;
}

/** POST /objects/:id/index: reads the text document, chunks and embeds it, replaces its chunks in the index. */
export async function indexObject({
  ctx,
  user,
  input,
}: VerbArgs<StorageContext, { id: string }>): Promise<IndexResult> {
  const row = await readyObject(ctx, user.userId, input.id);
  if (row.kind !== "file" || !INDEXABLE.test(row.contentType)) {
    throw new ServiceError("not_indexable", 422, "only text documents (text/*, JSON, XML, Markdown) can be indexed");
  }
  if (row.size > MAX_INDEXED_BYTES) {
    throw new ServiceError("document_too_large", 413, `documents up to ${MAX_INDEXED_BYTES} bytes can be indexed`);
  }
  const text = await storeCall(ctx, "read", () => new Response(ctx.store.read(objectKey(user.userId, row.id))).text());
  const chunks = chunkText(text);
  const vectors: number[][] = [];
  for (let start = 0; start < chunks.length; start += EMBED_BATCH) {
    const { embeddings } = await embedMany({
      model: ctx.llm.embeddingModel,
      values: chunks.slice(start, start + EMBED_BATCH),
    });
    vectors.push(...embeddings);
  }
  await ctx.documents.replace(
    user.userId,
    row.id,
    chunks.map((chunk, position) => ({
      id: crypto.randomUUID(),
      position,
      text: chunk,
      vector: vectors[position] ?? [],
    })),
  );
  await ctx.db
    .update(objects)
    .set({ indexedAt: new Date() })
    .where(and(eq(objects.id, row.id), eq(objects.userId, user.userId)));
  return { object_id: row.id, chunks: chunks.length };
}

/** POST /search: the user's chunks closest to the query, with their document's id and name. */
export async function searchDocuments({
  ctx,
  user,
  input,
}: VerbArgs<StorageContext, SearchInput>): Promise<SearchResult> {
  return { results: await searchFor(ctx, user.userId, input.query, input.limit) };
}

export async function searchFor(ctx: StorageContext, userId: string, query: string, limit: number) {
  const { embedding } = await embed({ model: ctx.llm.embeddingModel, value: query });
  const hits = await ctx.documents.search(userId, embedding, limit);
  if (hits.length === 0) return [];
  // Names come from the rows, which also drops a chunk whose object is gone.
  const rows = await ctx.db
    .select({ id: objects.id, name: objects.name })
    .from(objects)
    .where(and(eq(objects.userId, userId), inArray(objects.id, [...new Set(hits.map((hit) => hit.objectId))])));
  const names = new Map(rows.map((row) => [row.id, row.name]));
  return hits.flatMap((hit) => {
    const name = names.get(hit.objectId);
    return name === undefined ? [] : [{ object_id: hit.objectId, name, score: hit.score, text: hit.text }];
  });
}
