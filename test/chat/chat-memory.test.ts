// Long-term memory through the chat service: extraction and embedding run against the fake
// OpenAI-compatible server (structured output + deterministic embeddings), stored in the local
// PostgreSQL store or, in the last test, the Qdrant adapter against a fake Qdrant REST server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PgMemoryStore } from "../../src/chat/memory/pg-store";
import type { MemoryStore } from "../../src/chat/memory/store";
import type { ChatCompletionRequest } from "../../src/shared/testing";
import { FakeQdrant } from "./fake-qdrant";
import { type ChatHarness, promptOf, startChat, turns } from "./harness";

const user = () => `user-${crypto.randomUUID()}`;

/** Extraction replies: every sentence of the turn's user line that mentions "my" becomes a fact. */
function extractFacts(request: ChatCompletionRequest) {
  const turn = String(request.messages.at(-1)?.content ?? "");
  const userLine = /user: (.*)/.exec(turn)?.[1] ?? "";
  const facts = userLine
    .split(/(?<=\.)\s+/)
    .filter((sentence) => /\bmy\b/i.test(sentence) && !sentence.endsWith("?"))
    .map((sentence) => sentence.replace(/\bmy\b/i, "The user's"));
  return { json: { facts } };
}

describe("memory across conversations", () => {
  let h: ChatHarness;
  beforeAll(async () => {
    h = await startChat();
    h.llm.onStructured(extractFacts);
  });
  afterAll(() => h.ctx.close());

  test("facts from one conversation come back in a later one, never for another user", async () => {
    const ada = user();
    const adaToken = await h.token(ada);
    h.llm.script({ text: "Nice to know!" });
    await h.chatJson(adaToken, { text: "My sister is called Anna. The weather is bad." });
    await h.parts.engine.memory.idle();
    const extraction = h.llm.chatRequests().find((each) => !each.stream && each.body.response_format);
    expect(extraction?.body.response_format?.type).toBe("json_schema");
    expect(String(extraction?.body.messages.at(-1)?.content)).toContain("My sister is called Anna.");

    h.llm.script({ text: "Her name is Anna." });
    const index = turns(h);
    await h.chatJson(adaToken, { text: "What is my sister called?" });
    const later = promptOf(h.llm, index);
    expect(later.user).toContain("<memories>\n- The user's sister is called Anna.\n</memories>");
    expect(later.user).toEndWith("What is my sister called?");
    expect(later.system).not.toContain("Anna");

    const bob = user();
    h.llm.script({ text: "I don't know." });
    const bobIndex = turns(h);
    await h.chatJson(await h.token(bob), { text: "What is my sister called?" });
    expect(promptOf(h.llm, bobIndex).user).toBe("What is my sister called?");

    const listed = (await (await h.get(adaToken, "/memories")).json()) as { items: Array<{ text: string }> };
    expect(listed.items.map((item) => item.text)).toEqual(["The user's sister is called Anna."]);
    const bobs = (await (await h.get(await h.token(bob), "/memories")).json()) as { items: unknown[] };
    expect(bobs.items).toEqual([]);
  });

  test("a fact already known is not stored twice", async () => {
    const ada = user();
    const token = await h.token(ada);
    for (const reply of ["Noted.", "You said that."]) {
      h.llm.script({ text: reply });
      await h.chatJson(token, { text: "My favourite colour is green." });
      await h.parts.engine.memory.idle();
    }
    const listed = (await (await h.get(token, "/memories")).json()) as { items: unknown[] };
    expect(listed.items).toHaveLength(1);
  });

  test("memories can be listed, deleted one by one or all at once; another user's id is 404", async () => {
    const ada = user();
    const token = await h.token(ada);
    h.llm.script({ text: "ok" });
    await h.chatJson(token, { text: "My dog is Rex. My car is red. My town is Pisa." });
    await h.parts.engine.memory.idle();
    const { items } = (await (await h.get(token, "/memories?limit=2")).json()) as {
      items: Array<{ id: string; text: string; created_at: string }>;
      next_cursor: string | null;
    };
    expect(items).toHaveLength(2);
    const intruder = await h.token(user());
    expect((await h.del(intruder, `/memories/${items[0]!.id}`)).status).toBe(404);
    expect((await h.del(token, "/memories/not-a-uuid")).status).toBe(422);
    const deleted = await h.del(token, `/memories/${items[0]!.id}`);
    expect(await deleted.json()).toEqual({ deleted: 1 });
    expect((await h.del(token, `/memories/${items[0]!.id}`)).status).toBe(404);
    expect(await (await h.del(token, "/memories")).json()).toEqual({ deleted: 2 });
    expect(((await (await h.get(token, "/memories")).json()) as { items: unknown[] }).items).toEqual([]);
  });
});

/** A store whose search blocks until released or fails, in front of the real local store. */
function slowStore(inner: MemoryStore, mode: "block" | "fail") {
  const gate = Promise.withResolvers<void>();
  let searches = 0;
  const store: MemoryStore = {
    kind: "slow",
    init: () => inner.init(),
    add: (userId, items) => inner.add(userId, items),
    search: async (...args) => {
      searches++;
      if (mode === "fail") throw new Error("store down");
      await gate.promise;
      return inner.search(...args);
    },
    list: (...args) => inner.list(...args),
    delete: (...args) => inner.delete(...args),
    deleteAll: (userId) => inner.deleteAll(userId),
    deleteUser: (userId) => inner.deleteUser(userId),
  };
  return { store, release: () => gate.resolve(), searches: () => searches };
}

describe("memory retrieval under a time budget", () => {
  for (const mode of ["block", "fail"] as const) {
    test(`a memory store that ${mode === "block" ? "does not answer" : "fails"} does not hold the reply back`, async () => {
      let slow: ReturnType<typeof slowStore> | undefined;
      await using h = await startChat({
        env: { MEMORY_BUDGET_MS: "50" },
        chat: (platform) => {
          slow = slowStore(new PgMemoryStore(platform.db), mode);
          return { memoryStore: slow.store };
        },
      });
      h.llm.script({ chunks: ["Still ", "here."] });
      const response = await h.chatJson(await h.token(user()), { text: "hello" });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { text: string }).text).toBe("Still here.");
      expect(slow?.searches()).toBe(1);
      expect(promptOf(h.llm, 0).user).toBe("hello");
      slow?.release();
    });
  }
});

describe("memory in Qdrant", () => {
  test("the chat flow stores and recalls memories through the Qdrant adapter", async () => {
    const qdrant = new FakeQdrant();
    await using h = await startChat({ env: { QDRANT_URL: qdrant.url, QDRANT_COLLECTION: "chat_memories_test" } });
    h.ctx.defer(() => qdrant.close());
    h.llm.onStructured(extractFacts);
    const token = await h.token("qdrant-user");
    h.llm.script({ text: "Got it." }, { text: "Tea." });
    await h.chatJson(token, { text: "My drink is tea." });
    await h.parts.engine.memory.idle();
    await h.chatJson(token, { text: "What is my drink?" });
    expect(promptOf(h.llm, 1).user).toContain("The user's drink is tea.");
    expect(qdrant.collections.get("chat_memories_test")?.points.size).toBe(1);
  });
});
