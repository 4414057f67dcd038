// What an operator sees of a chat turn: one `chat turn ended` line (chat, user, surface,
// transport, outcome, duration) and a `chat_turns_total{surface,outcome}` sample, for each
// transport; an SSE turn whose model fails is HTTP 200 and shows only there. Real chat service
// (harness.ts) logging into a captureLogger, the fake OpenAI-compatible server as the model.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { captureLogger } from "../../src/shared/testing";
import { type ChatHarness, readSse, startChat } from "./harness";

const capture = captureLogger();
let h: ChatHarness;
beforeAll(async () => {
  h = await startChat({ logger: capture.logger });
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const endedFor = (userId: string) =>
  capture.lines.filter((line) => line.user_id === userId && line.msg === "chat turn ended");

async function turnsCounted(surface: string, outcome: string): Promise<number> {
  const values = (await h.platform.metrics.registry.getSingleMetric("chat_turns_total")?.get())?.values ?? [];
  return values.find((value) => value.labels.surface === surface && value.labels.outcome === outcome)?.value ?? 0;
}

describe("a chat turn's end", () => {
  test("a JSON turn logs its end with the finish reason and counts it", async () => {
    const userId = user();
    const before = await turnsCounted("home", "stop");
    h.llm.script({ text: "hello there" });
    const response = await h.chatJson(await h.token(userId), { text: "hi" });
    const body = (await response.json()) as { chat_id: string };
    expect(endedFor(userId)).toEqual([
      expect.objectContaining({
        level: 30,
        chat_id: body.chat_id,
        user_id: userId,
        surface: "home",
        transport: "json",
        outcome: "stop",
        ms: expect.any(Number),
      }),
    ]);
    expect(await turnsCounted("home", "stop")).toBe(before + 1);
  });

  test("an SSE turn whose model fails is 200, and logs and counts outcome error", async () => {
    const userId = user();
    const before = await turnsCounted("floating", "error");
    h.llm.script({ error: { status: 401, message: "upstream refused" } });
    const response = await h.chatSse(await h.token(userId), { text: "hi", surface: "floating" });
    expect(response.status).toBe(200);
    const chatId = response.headers.get("x-chat-id");
    await readSse(response);
    expect(endedFor(userId)).toEqual([
      expect.objectContaining({
        level: 40,
        chat_id: chatId,
        user_id: userId,
        surface: "floating",
        transport: "sse",
        outcome: "error",
      }),
    ]);
    expect(await turnsCounted("floating", "error")).toBe(before + 1);
  });

  test("a socket turn logs its end with transport ws and the device", async () => {
    const userId = user();
    const device = await h.device(userId, {}, { deviceId: "laptop" });
    h.llm.script({ text: "from the socket" });
    const stream = device.chat({ text: "hi" });
    const done = await stream.done;
    expect(endedFor(userId)).toEqual([
      expect.objectContaining({
        level: 30,
        chat_id: done.chat_id,
        user_id: userId,
        device_id: "laptop",
        surface: "home",
        transport: "ws",
        outcome: "stop",
      }),
    ]);
  });
});
