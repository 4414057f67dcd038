import type { QdrantClient } from "@qdrant/js-client-rest";

/**
 * Makes sure a collection shared by every user exists, as Qdrant's multitenancy guide has it:
 * cosine vectors of `dimensions`, `user_id` a keyword payload index marked `is_tenant` (every
 * read, count and delete of ours filters on it), plus any other keyword index the caller filters
 * on. Idempotent: Qdrant accepts re-creating an identical index.
 */
export async function ensureTenantCollection(
  client: QdrantClient,
  collection: string,
  dimensions: number,
  keywordIndexes: string[] = [],
): Promise<void> {
  const { exists } = await client.collectionExists(collection);
  if (!exists) await client.createCollection(collection, { vectors: { size: dimensions, distance: "Cosine" } });
  await client.createPayloadIndex(collection, {
    field_name: "user_id",
    field_schema: { type: "keyword", is_tenant: true },
    wait: true,
  });
  for (const field of keywordIndexes) {
    await client.createPayloadIndex(collection, { field_name: field, field_schema: "keyword", wait: true });
  }
}
