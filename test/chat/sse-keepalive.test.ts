// SSE keep-alive end to end: a real chat service (see harness.ts) whose model is the fake
// OpenAI-compatible server answering slowly, read as it streams. CHAT_SSE_KEEPALIVE_MS is short so
// the silences the keep-alive fills last a fraction of a second instead of Cloudflare's minutes.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { UIMessageChunk } from "ai";
import { type ChatHarness, sseFields, startChat } from "./harness";

const KEEPALIVE_MS = 50;
let h: ChatHarness;
beforeAll(async () => {
  h = await startChat({ env: { CHAT_SSE_KEEPALIVE_MS: String(KEEPALIVE_MS) } });
});
afterAll(() => h.ctx.close());

/** Each SSE event of the response with the time it arrived, read as the server sends them. */
async function eventsAsTheyCome(response: Response): Promise<Array<{ at: number; event: string }>> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const seen: Array<{ at: number; event: string }> = [];
  let buffered = "";
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    buffered += decoder.decode(chunk.value, { stream: true });
    const events = buffered.split("\n\n");
    buffered = events.pop() ?? "";
    for (const event of events) seen.push({ at: performance.now(), event });
  }
  expect(buffered).toBe("");
  return seen;
}

test("a slow model reply gets keep-alive comments through its silences, and the same chunks", async () => {
  const token = await h.token(`user-${crypto.randomUUID()}`);
  h.llm.script({ chunks: ["slow ", "reply"], firstTokenDelayMs: 600, chunkDelayMs: 600 });
  const response = await h.chatSse(token, { text: "think hard" });
  expect(response.status).toBe(200);
  const events = await eventsAsTheyCome(response);

  const comments = events.filter(({ event }) => event.startsWith(":"));
  const data = events.filter(({ event }) => !event.startsWith(":"));
  // An SSE comment line, which every client ignores; nothing else is added to the stream.
  expect(new Set(comments.map(({ event }) => event))).toEqual(new Set([": keep-alive"]));
  // Every chunk carries its seq as the event id (what a reconnect sends back as Last-Event-ID).
  const fields = data.map(({ event }) => sseFields(event));
  expect(fields.at(-1)).toEqual({ data: "[DONE]" });
  expect(fields.slice(0, -1).map(({ id }) => id)).toEqual(fields.slice(0, -1).map((_, seq) => String(seq)));
  const chunks = fields.slice(0, -1).map(({ data: json }) => JSON.parse(json ?? "") as UIMessageChunk);
  expect(chunks.flatMap((chunk) => (chunk.type === "text-delta" ? [chunk.delta] : []))).toEqual(["slow ", "reply"]);
  expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });

  // Keep-alives while the model had not answered yet, and between its chunks.
  const firstText = events.findIndex(({ event }) => event.includes('"text-delta"'));
  const secondText = events.findLastIndex(({ event }) => event.includes('"text-delta"'));
  expect(events.slice(0, firstText).filter(({ event }) => event.startsWith(":")).length).toBeGreaterThanOrEqual(3);
  expect(
    events.slice(firstText, secondText).filter(({ event }) => event.startsWith(":")).length,
  ).toBeGreaterThanOrEqual(3);
  // No silence much longer than the keep-alive period, where the model was silent for 600 ms at a time.
  const arrivals = events.map(({ at }) => at);
  const longestSilence = Math.max(...arrivals.slice(1).map((at, index) => at - (arrivals[index] as number)));
  expect(longestSilence).toBeLessThan(300);
});
