// One contract, two memory stores: the local store on a real PostgreSQL, and the Qdrant adapter
// against a fake Qdrant REST server (no Qdrant runs here) that also lets us check its requests
// against Qdrant's REST contract.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PgMemoryStore } from "../../src/chat/memory/pg-store";
import { QdrantMemoryStore } from "../../src/chat/memory/qdrant-store";
import type { MemoryStore } from "../../src/chat/memory/store";
import { migrations } from "../../src/chat/migrations";
import { migrate } from "../../src/shared/db";
import { hashEmbedding } from "../../src/shared/llm";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { FakeQdrant } from "./fake-qdrant";

let ctx: TestContext;
let qdrant: FakeQdrant;
const stores: Array<[string, () => MemoryStore]> = [];

beforeAll(async () => {
  ctx = await createTestContext();
  const platform = await ctx.platform({ service: "chat" });
  await migrate(platform.db, "chat", migrations);
  qdrant = new FakeQdrant();
  ctx.defer(() => qdrant.close());
  stores.push(["postgres", () => new PgMemoryStore(platform.db)]);
  stores.push([
    "qdrant",
    () =>
      new QdrantMemoryStore({ url: qdrant.url, apiKey: "qdrant-key", collection: `memories_${crypto.randomUUID()}` }),
  ]);
});
afterAll(() => ctx.close());

const vec = (text: string) => hashEmbedding(text, 32);
const memory = (text: string, createdAt?: Date) => ({ id: crypto.randomUUID(), text, vector: vec(text), createdAt });

for (const name of ["postgres", "qdrant"]) {
  describe(`memory store contract: ${name}`, () => {
    const open = async () => {
      const store = stores.find(([kind]) => kind === name)![1]();
      await store.init();
      return store;
    };
    const ada = () => `ada-${crypto.randomUUID()}`;

    test("search returns the user's most similar memories, best first, above the minimum score", async () => {
      const store = await open();
      const [user, other] = [ada(), ada()];
      await store.add(user, [
        memory("lives in Rome with two cats"),
        memory("works as a nurse at night"),
        memory("likes green tea"),
      ]);
      await store.add(other, [memory("lives in Rome too")]);
      const found = await store.search(user, vec("where does she live? Rome"), 2, 0.3);
      expect(found[0]?.text).toBe("lives in Rome with two cats");
      expect(found.every((each) => each.score >= 0.3)).toBe(true);
      expect(found.length).toBeLessThanOrEqual(2);
      expect(await store.search(user, vec("where does she live? Rome"), 5, 0.99)).toEqual([]);
      const all = await store.search(user, vec("lives in Rome with two cats"), 10, -1);
      expect(all[0]?.text).toBe("lives in Rome with two cats");
      expect(all.map((each) => each.text)).not.toContain("lives in Rome too");
      expect(all.length).toBe(3);
      expect(all.map((each) => each.score)).toEqual(all.map((each) => each.score).sort((a, b) => b - a));
      expect(await store.search(user, vec("x"), 0, -1)).toEqual([]);
    });

    test("list pages through all of the user's memories and nobody else's", async () => {
      const store = await open();
      const [user, other] = [ada(), ada()];
      const texts = Array.from({ length: 7 }, (_, i) => `fact number ${i}`);
      await store.add(
        user,
        texts.map((text, i) => memory(text, new Date(Date.now() - i * 1000))),
      );
      await store.add(other, [memory("someone else's fact")]);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.list(user, 3, cursor);
        seen.push(...page.items.map((item) => item.text));
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 10);
      expect(seen.sort()).toEqual([...texts].sort());
      expect(pages).toBe(3);
      expect((await store.list(ada(), 10)).items).toEqual([]);
    });

    test("delete removes only the caller's own memory", async () => {
      const store = await open();
      const [user, other] = [ada(), ada()];
      const mine = memory("my secret");
      const theirs = memory("their secret");
      await store.add(user, [mine]);
      await store.add(other, [theirs]);
      expect(await store.delete(user, theirs.id)).toBe(false);
      expect(await store.delete(user, crypto.randomUUID())).toBe(false);
      expect((await store.list(other, 10)).items.map((item) => item.id)).toEqual([theirs.id]);
      expect(await store.delete(user, mine.id)).toBe(true);
      expect((await store.list(user, 10)).items).toEqual([]);
    });

    test("deleteAll forgets one user entirely and reports how many", async () => {
      const store = await open();
      const [user, other] = [ada(), ada()];
      await store.add(user, [memory("a"), memory("b")]);
      await store.add(other, [memory("c")]);
      expect(await store.deleteAll(user)).toBe(2);
      expect((await store.list(user, 10)).items).toEqual([]);
      expect((await store.list(other, 10)).items.map((item) => item.text)).toEqual(["c"]);
      expect(await store.deleteAll(user)).toBe(0);
    });

    test("deleteUser erases a deleted account's memories, leaves others, and may run again", async () => {
      const store = await open();
      const [user, other] = [ada(), ada()];
      await store.add(user, [memory("a"), memory("b")]);
      await store.add(other, [memory("c")]);
      await store.deleteUser(user);
      expect((await store.list(user, 10)).items).toEqual([]);
      expect(await store.search(user, vec("a"), 5, -1)).toEqual([]);
      expect((await store.list(other, 10)).items.map((item) => item.text)).toEqual(["c"]);
      await store.deleteUser(user);
      await store.deleteUser(ada());
    });
  });
}

describe("Qdrant REST contract", () => {
  test("one collection with a cosine vector config and a tenant index on user_id; every read and delete filters by user", async () => {
    const collection = `memories_${crypto.randomUUID()}`;
    const store = new QdrantMemoryStore({ url: qdrant.url, apiKey: "qdrant-key", collection });
    const start = qdrant.requests.length;
    await store.add("u1", [memory("likes tea")]);
    await store.add("u1", [memory("likes coffee")]);
    await store.search("u1", vec("tea"), 3, 0.2);
    await store.list("u1", 10);
    await store.delete("u1", crypto.randomUUID());
    await store.deleteAll("u1");
    const requests = qdrant.requests.slice(start);
    const base = `/collections/${collection}`;
    expect(requests.slice(0, 4).map((request) => `${request.method} ${request.path}`)).toEqual([
      `GET ${base}/exists`,
      `PUT ${base}`,
      `PUT ${base}/index`,
      `PUT ${base}/points`,
    ]);
    expect(requests[1]?.body).toMatchObject({ vectors: { size: 32, distance: "Cosine" } });
    expect(requests[2]?.body).toMatchObject({
      field_name: "user_id",
      field_schema: { type: "keyword", is_tenant: true },
    });
    // The collection and index are set up once per process, not per write.
    expect(requests.filter((request) => request.path === base).length).toBe(1);
    const upserts = requests.filter((request) => request.method === "PUT" && request.path === `${base}/points`);
    expect(upserts.length).toBe(2);
    for (const upsert of upserts) {
      expect(upsert.search).toContain("wait=true");
      const points = (upsert.body as { points: Array<{ payload: Record<string, unknown> }> }).points;
      expect(points.every((point) => point.payload.user_id === "u1" && typeof point.payload.text === "string")).toBe(
        true,
      );
    }
    const reads = requests.filter((request) => request.method === "POST");
    expect(reads.map((request) => request.path.slice(base.length)).sort()).toEqual(
      ["/points/count", "/points/count", "/points/delete", "/points/query", "/points/scroll"].sort(),
    );
    for (const read of reads) {
      const must = (read.body as { filter?: { must?: unknown[] } }).filter?.must ?? [];
      expect({ path: read.path, must }).toEqual({
        path: read.path,
        must: expect.arrayContaining([{ key: "user_id", match: { value: "u1" } }]),
      });
    }
    expect(requests.every((request) => request.headers["api-key"] === "qdrant-key")).toBe(true);
  });

  test("reads before the collection exists return nothing instead of failing", async () => {
    const store = new QdrantMemoryStore({ url: qdrant.url, collection: `missing_${crypto.randomUUID()}` });
    expect(await store.list("u1", 10)).toEqual({ items: [] });
    expect(await store.delete("u1", crypto.randomUUID())).toBe(false);
    expect(await store.deleteAll("u1")).toBe(0);
  });
});
