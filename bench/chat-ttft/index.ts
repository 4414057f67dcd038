// Server-added time to first token of the chat service.
//
// A fake OpenAI-compatible server streams every reply after a fixed first-token delay. The peer is
// the bare AI SDK provider calling that server directly (streamText, time to the first text delta):
// what any client of the same model would wait. The chat service is measured from an SDK device's
// `chat` frame to its first text `chat_chunk` over the real WebSocket, and from POST /api/v1/chat to
// the first SSE text chunk. Server-added time = chat time − peer time, per percentile. "With memory"
// seeds the user's long-term memory so every turn embeds the message and searches the store within
// MEMORY_BUDGET_MS. Needs PostgreSQL and Redis like the tests: `bun bench/chat-ttft/index.ts`.
import { streamText } from "ai";
import type { ChatServiceModule } from "../../src/chat";
import { createChatService } from "../../src/chat";
import { DeviceClient } from "../../src/client";
import { createLlm, hashEmbedding } from "../../src/shared/llm";
import { silentLogger } from "../../src/shared/logger";
import type { RateLimiter } from "../../src/shared/rate-limit";
import { createTestContext, startFakeOpenAi } from "../../src/shared/testing";

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 300);
const WARMUP = 30;
const FIRST_TOKEN_MS = Number(process.env.BENCH_FIRST_TOKEN_MS ?? 20);

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};
const stats = (values: number[]) => ({ p50: percentile(values, 50), p99: percentile(values, 99) });
const ms = (value: number) => value.toFixed(2);

async function measure(run: () => Promise<number>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await run();
  const out: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) out.push(await run());
  return out;
}

const llm = startFakeOpenAi({ firstTokenDelayMs: FIRST_TOKEN_MS });
llm.onChat(() => ({ text: "Sure, here is a short answer to that." }));
llm.onStructured(() => ({ json: { facts: [] } }));
const ctx = await createTestContext();

const peerModel = createLlm(
  {
    NODE_ENV: "test",
    LLM_BASE_URL: llm.url,
    LLM_API_KEY: "sk",
    LLM_CHAT_MODEL: "m",
    LLM_CLASSIFY_MODEL: "m",
    LLM_EMBEDDING_MODEL: "e",
  },
  silentLogger(),
).chatModel;
const peer = await measure(async () => {
  const started = performance.now();
  const result = streamText({ model: peerModel, prompt: "hello" });
  for await (const _ of result.textStream) break;
  return performance.now() - started;
});

async function chatRun(label: string, memoryBudgetMs: number) {
  // The per-minute chat rate limit would stop a benchmark; it is not what is measured here.
  const unlimited: RateLimiter = {
    check: async (_key, rule) => ({
      allowed: true,
      limit: rule.limit,
      remaining: rule.limit,
      resetMs: 0,
      retryAfterMs: 0,
      source: "local",
    }),
    reset: async () => {},
  };
  const server = await ctx.start([(platform) => createChatService(platform, { limiter: unlimited })], {
    service: "chat",
    env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk", MEMORY_BUDGET_MS: String(memoryBudgetMs) },
  });
  const module = server.modules[0] as ChatServiceModule;
  const userId = `bench-${label}`;
  if (memoryBudgetMs > 0) {
    const facts = Array.from({ length: 200 }, (_, i) => `The user mentioned fact number ${i} about project ${i % 17}.`);
    await module.engine.memory.store.add(
      userId,
      facts.map((text) => ({ id: crypto.randomUUID(), text, vector: hashEmbedding(text, 64) })),
    );
  }
  const device = new DeviceClient({
    url: `${server.url.replace(/^http/, "ws")}/api/v1/ws/device`,
    deviceId: `bench-${label}`,
    token: () => ctx.token(userId, "team"),
    tools: { task_list: () => [] },
  });
  await device.connect();
  const ws = await measure(async () => {
    const started = performance.now();
    const stream = device.chat({ text: "What about project 3?" });
    let first = 0;
    for await (const frame of stream) {
      if (!first && (frame.chunk as { type: string }).type === "text-delta") first = performance.now() - started;
    }
    await stream.done;
    return first;
  });
  const token = await ctx.token(userId, "team");
  const sse = await measure(async () => {
    const started = performance.now();
    const response = await fetch(`${server.url}/api/v1/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ text: "What about project 3?" }),
    });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let first = 0;
    let buffered = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      if (!first && buffered.includes('"type":"text-delta"')) first = performance.now() - started;
    }
    return first;
  });
  device.close();
  await module.engine.memory.idle();
  return { ws, sse };
}

const without = await chatRun("plain", 0);
const withMemory = await chatRun("memory", 150);
await ctx.close();
await llm.close();

const peerStats = stats(peer);
const rows: Array<[string, number[]]> = [
  ["peer: AI SDK provider → fake LLM", peer],
  ["chat over WebSocket, no memory", without.ws],
  ["chat over SSE, no memory", without.sse],
  ["chat over WebSocket, with memory", withMemory.ws],
  ["chat over SSE, with memory", withMemory.sse],
];
console.log(
  `first-token delay of the fake LLM: ${FIRST_TOKEN_MS} ms; ${ITERATIONS} turns each after ${WARMUP} warm-up`,
);
console.log("| path | TTFT p50 ms | TTFT p99 ms | server-added p50 ms | server-added p99 ms |");
console.log("|---|---|---|---|---|");
for (const [label, values] of rows) {
  const s = stats(values);
  const added = label.startsWith("peer") ? ["—", "—"] : [ms(s.p50 - peerStats.p50), ms(s.p99 - peerStats.p99)];
  console.log(`| ${label} | ${ms(s.p50)} | ${ms(s.p99)} | ${added[0]} | ${added[1]} |`);
}
