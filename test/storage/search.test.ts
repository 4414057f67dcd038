// Document search: a stored text document is read from the object store, chunked, embedded (the
// fake OpenAI-compatible server: bag-of-words vectors, so shared words score high) and kept per
// user in PostgreSQL, or in Qdrant (the recorded-contract fake of test/chat). A user finds their own
// documents and never another user's; deleting a document removes its chunks.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { chunkText } from "../../src/storage/documents";
import { documentChunks } from "../../src/storage/tables";
import { FakeQdrant } from "../chat/fake-qdrant";
import { newUserId, type Storage, startStorage } from "./harness";

const encoder = new TextEncoder();
const GARDEN = "The tomato plants in the greenhouse need watering every morning before the heat.";
const TAXES = "The quarterly tax return is due to the revenue office by the end of the month.";

test("chunks are at most 1000 characters and each repeats the last 200 of the one before", () => {
  const text = Array.from({ length: 2500 }, (_, index) => String.fromCharCode(97 + (index % 26))).join("");
  const chunks = chunkText(text);
  expect(chunks.map((chunk) => chunk.length)).toEqual([1000, 1000, 900]);
  expect(chunks[1]?.slice(0, 200)).toBe(chunks[0]?.slice(800));
  expect(chunks.join("").length).toBe(2500 + 2 * 200);
  expect(chunkText("   ")).toEqual([]);
});

for (const index of ["postgres", "qdrant"] as const) {
  describe(`search with the ${index} index`, () => {
    let s: Storage;
    let qdrant: FakeQdrant | undefined;
    beforeAll(async () => {
      qdrant = index === "qdrant" ? new FakeQdrant() : undefined;
      s = await startStorage("s3", { env: qdrant ? { QDRANT_URL: qdrant.url } : {} });
      if (qdrant) s.ctx.defer(() => qdrant?.close());
    });
    afterAll(() => s.ctx.close());

    const store = async (token: string, name: string, text: string, contentType = "text/plain") => {
      const { completed } = await s.upload(token, encoder.encode(text), { name, contentType });
      expect(completed?.status).toBe(200);
      return completed?.body.id as string;
    };

    test("a user finds their own document, never another user's, and deleting it removes its chunks", async () => {
      const alice = await s.token(newUserId(), "pro");
      const bob = await s.token(newUserId(), "pro");
      const garden = await store(alice, "garden.txt", GARDEN);
      const taxes = await store(alice, "taxes.md", TAXES, "text/markdown");
      const bobGarden = await store(bob, "bob-garden.txt", `${GARDEN} Bob's own notes.`);
      for (const [token, id] of [
        [alice, garden],
        [alice, taxes],
        [bob, bobGarden],
      ] as const) {
        const indexed = await s.call("POST", `/objects/${id}/index`, { token });
        expect(indexed.status).toBe(200);
        expect(indexed.body).toEqual({ object_id: id, chunks: 1 });
      }
      const found = await s.call("POST", "/search", {
        token: alice,
        body: { query: "watering tomato plants", limit: 5 },
      });
      expect(found.status).toBe(200);
      expect(found.body.results[0]).toMatchObject({ object_id: garden, name: "garden.txt", text: GARDEN });
      expect(found.body.results.map((hit: { object_id: string }) => hit.object_id).sort()).toEqual(
        [garden, taxes].sort(),
      );
      const tax = await s.call("POST", "/search", { token: alice, body: { query: "tax return due", limit: 1 } });
      expect(tax.body.results.map((hit: { object_id: string }) => hit.object_id)).toEqual([taxes]);
      const bobs = await s.call("POST", "/search", { token: bob, body: { query: "tax return watering", limit: 10 } });
      expect(bobs.body.results.map((hit: { object_id: string }) => hit.object_id)).toEqual([bobGarden]);
      expect((await s.call("GET", `/objects/${garden}`, { token: alice })).body.indexed).toBe(true);

      expect((await s.call("DELETE", `/objects/${garden}`, { token: alice })).status).toBe(204);
      const after = await s.call("POST", "/search", {
        token: alice,
        body: { query: "watering tomato plants", limit: 5 },
      });
      expect(after.body.results.map((hit: { object_id: string }) => hit.object_id)).toEqual([taxes]);
      if (index === "postgres") {
        const rows = await s.server.platform.db
          .select()
          .from(documentChunks)
          .where(eq(documentChunks.objectId, garden));
        expect(rows).toEqual([]);
      } else {
        const points = [...(qdrant?.collections.get("storage_documents")?.points.values() ?? [])];
        expect(points.filter((point) => point.payload.object_id === garden)).toEqual([]);
        expect(points.length).toBe(2);
        // The tenant index, as chat's memories have it.
        expect(qdrant?.indexes).toContainEqual(
          expect.objectContaining({ field_name: "user_id", field_schema: { type: "keyword", is_tenant: true } }),
        );
      }
    });

    test("re-indexing replaces a document's chunks rather than adding to them", async () => {
      const token = await s.token(newUserId(), "pro");
      const id = await store(token, "long.txt", "word ".repeat(500));
      await s.call("POST", `/objects/${id}/index`, { token });
      const again = await s.call("POST", `/objects/${id}/index`, { token });
      expect(again.body.chunks).toBe(3);
      const found = await s.call("POST", "/search", { token, body: { query: "word", limit: 20 } });
      expect(found.body.results.length).toBe(3);
    });

    test("binary files are not indexable; bad queries are 422; no token is 401", async () => {
      const token = await s.token(newUserId(), "pro");
      const { completed } = await s.upload(token, new Uint8Array([0, 1, 2]), {
        contentType: "application/octet-stream",
      });
      const refused = await s.call("POST", `/objects/${completed?.body.id}/index`, { token });
      expect(refused.status).toBe(422);
      expect(refused.body.error.code).toBe("not_indexable");
      expect((await s.call("POST", "/search", { token, body: { query: "" } })).status).toBe(422);
      expect((await s.call("POST", "/search", { token, body: { query: "x", limit: 500 } })).status).toBe(422);
      expect((await s.call("POST", "/search", { body: { query: "x" } })).status).toBe(401);
      // Nothing indexed yet: an empty answer, not an error.
      const empty = await s.call("POST", "/search", { token, body: { query: "anything" } });
      expect(empty).toMatchObject({ status: 200, body: { results: [] } });
    });
  });
}
