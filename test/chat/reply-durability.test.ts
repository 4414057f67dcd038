// A reply the user was shown is stored even when PostgreSQL goes away while it streams. Strategy:
// the chat instance reaches PostgreSQL through a TcpProxy the test cuts once the model has been
// called (the fake OpenAI-compatible server streams the reply slowly), so the turn's final write
// meets the outage; the test reads the database directly, not through the proxy.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createChatService } from "../../src/chat";
import { DeviceClient } from "../../src/client";
import {
  createTestContext,
  eventually,
  type FakeOpenAi,
  startFakeOpenAi,
  TcpProxy,
  type TestContext,
  viaProxy,
} from "../../src/shared/testing";

const pgProxy = new TcpProxy("127.0.0.1", 5432);
let ctx: TestContext;
let llm: FakeOpenAi;
let base: string;
let wsUrl: string;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  llm = startFakeOpenAi();
  llm.onStructured(() => ({ json: { facts: [] } }));
  pgProxy.start();
  const server = await ctx.start([(platform) => createChatService(platform)], {
    service: "chat",
    env: {
      LLM_BASE_URL: llm.url,
      LLM_API_KEY: "sk-test",
      DATABASE_URL: viaProxy(ctx.databaseUrl, pgProxy.port),
      DATABASE_WAIT_MS: "500",
    },
  });
  base = server.url;
  wsUrl = `${server.url.replace(/^http/, "ws")}/api/v1/ws/device`;
  sql = postgres(ctx.databaseUrl, { max: 1, onnotice: () => {} });
});
// Closing after the outage has measured 5 s in the platform's close (the PostgreSQL pool's end is
// bounded at 5 s), in most runs here: past bun's default 5 s for a hook.
afterAll(async () => {
  await sql.end();
  await ctx.close();
  llm.close();
  pgProxy.stop();
}, 30_000);

const WORDS = Array.from({ length: 12 }, (_, i) => `word${i} `);

describe("a reply streamed during a PostgreSQL outage", () => {
  test("is answered in full, then stored once the database is back, with its user message", async () => {
    const userId = crypto.randomUUID();
    const token = await ctx.token(userId, "free");
    llm.script({ chunks: WORDS, chunkDelayMs: 60 });
    const calls = llm.chatRequests().length;
    const answer = fetch(`${base}/api/v1/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ text: "tell me twelve words" }),
    });
    await eventually(
      () => llm.chatRequests().length,
      (count) => count > calls,
    );
    pgProxy.cut();
    const response = await answer;
    expect(response.status).toBe(200);
    const body = (await response.json()) as { chat_id: string; message_id: string; text: string };
    expect(body.text).toBe(WORDS.join(""));

    pgProxy.resume();
    const stored = await eventually(
      () => sql`select role, parts, status from chat.messages where conversation_id = ${body.chat_id} order by seq`,
      (rows) => rows.length === 2,
    );
    expect(stored.map((row) => [row.role, row.status])).toEqual([
      ["user", "completed"],
      ["assistant", "completed"],
    ]);
    const parts = stored[1]?.parts as Array<{ type: string; text?: string }>;
    expect(parts.filter((part) => part.type === "text").map((part) => part.text)).toEqual([WORDS.join("")]);
  }, 30_000);

  test("over the device socket: chat_done with the whole reply, no error frame, and the reply stored", async () => {
    const userId = crypto.randomUUID();
    const device = new DeviceClient({
      url: wsUrl,
      deviceId: "laptop",
      token: () => ctx.token(userId, "free"),
      tools: {},
      backoff: { initialMs: 50, maxMs: 400 },
    });
    ctx.defer(() => device.close());
    await device.connect();
    const errors: unknown[] = [];
    device.on("error", (frame) => errors.push(frame));
    llm.script({ chunks: WORDS, chunkDelayMs: 60 });
    const calls = llm.chatRequests().length;
    const stream = device.chat({ text: "tell me twelve words" });
    await eventually(
      () => llm.chatRequests().length,
      (count) => count > calls,
    );
    pgProxy.cut();
    let text = "";
    let chatId = "";
    for await (const frame of stream) {
      chatId = frame.chat_id;
      const chunk = frame.chunk as { type: string; delta?: string };
      if (chunk.type === "text-delta") text += chunk.delta;
    }
    expect(await stream.done).toMatchObject({ type: "chat_done", finish_reason: "stop" });
    expect(text).toBe(WORDS.join(""));
    expect(errors).toEqual([]);

    pgProxy.resume();
    const stored = await eventually(
      () => sql`select role from chat.messages where conversation_id = ${chatId} order by seq`,
      (rows) => rows.length === 2,
    );
    expect(stored.map((row) => row.role)).toEqual(["user", "assistant"]);
  }, 30_000);
});
