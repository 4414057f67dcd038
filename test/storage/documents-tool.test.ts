// The chat agent's documents_search tool end to end: a chat instance and a storage instance on one
// Redis (and PostgreSQL), the search asked over the shared queue and answered on the chat instance's
// reply channel. The fake OpenAI-compatible server calls the tool; its recorded requests show what
// the model was given. A user's search never returns another user's document.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDocumentSearchQueue } from "../../src/shared/document-search";
import { createStorageService } from "../../src/storage";
import { type ChatHarness, promptOf, readSse, startChat, turns } from "../chat/harness";
import { sha256Hex } from "./harness";

let h: ChatHarness;
let storageUrl: string;
beforeAll(async () => {
  h = await startChat({ env: { CHAT_TOOL_DEADLINE_MS: "3000" } });
  const dir = mkdtempSync(join(tmpdir(), "storage-tool-"));
  h.ctx.defer(() => rmSync(dir, { recursive: true, force: true }));
  const storage = await h.ctx.start([createStorageService], {
    service: "storage",
    env: { LLM_BASE_URL: h.llm.url, LLM_API_KEY: "sk-test", DATA_DIR: dir },
  });
  storageUrl = `${storage.url}/api/v1/storage`;
});
afterAll(() => h.ctx.close());

const GARDEN = "The tomato plants in the greenhouse need watering every morning before the heat.";

async function indexedDocument(token: string, name: string, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${storageUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await response.json()) as Record<string, unknown> & { url: { url: string } };
  };
  const started = await call("POST", "/uploads", {
    name,
    size: bytes.byteLength,
    sha256: sha256Hex(bytes),
    content_type: "text/plain",
  });
  await fetch(started.url.url, { method: "PUT", body: bytes });
  await call("POST", `/uploads/${started.upload_id}/complete`, {});
  await call("POST", `/objects/${started.upload_id}/index`);
  return started.upload_id as string;
}

test("the model calls documents_search and gets the user's own passage, never another user's", async () => {
  const alice = crypto.randomUUID();
  const bob = crypto.randomUUID();
  const aliceToken = await h.token(alice, "pro");
  const garden = await indexedDocument(aliceToken, "garden.txt", GARDEN);
  await indexedDocument(await h.token(bob, "pro"), "bob-greenhouse.txt", `${GARDEN} Bob waters twice.`);
  h.llm.script(
    { toolCalls: [{ id: "call_docs", name: "documents_search", args: { query: "watering tomato plants", limit: 5 } }] },
    { text: "Water them every morning." },
  );
  const first = turns(h);
  const { chunks } = await readSse(await h.chatSse(aliceToken, { text: "When should I water the tomatoes?" }));
  const prompt = promptOf(h.llm, first);
  expect(prompt.tools).toContain("documents_search");
  const toolMessage = promptOf(h.llm, first + 1).messages.find((message) => message.role === "tool");
  const output = JSON.parse(String(toolMessage?.content)) as {
    results: Array<{ document: string; object_id: string; text: string }>;
  };
  expect(output.results.map((hit) => [hit.document, hit.object_id, hit.text])).toEqual([
    ["garden.txt", garden, GARDEN],
  ]);
  expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
});

test("with no storage replica answering, the tool fails within the deadline and the turn goes on", async () => {
  const lonely = await startChat({ env: { CHAT_TOOL_DEADLINE_MS: "300" } });
  try {
    lonely.llm.script(
      { toolCalls: [{ id: "call_x", name: "documents_search", args: { query: "anything" } }] },
      { text: "I could not search your documents." },
    );
    const first = turns(lonely);
    const { chunks } = await readSse(await lonely.chatSse(await lonely.token(crypto.randomUUID()), { text: "search" }));
    const toolMessage = promptOf(lonely.llm, first + 1).messages.find((message) => message.role === "tool");
    expect(String(toolMessage?.content)).toContain("document search is unavailable");
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
    // The unanswered search was taken back off the queue, not left for a replica that never came.
    const queue = openDocumentSearchQueue(lonely.platform);
    expect(await queue.counts()).toEqual({ waiting: 0, active: 0 });
    await queue.close();
  } finally {
    await lonely.ctx.close();
  }
});
