// Graceful shutdown of a chat instance with turns running on device sockets. Strategy: an
// in-process chat instance stopped the way SIGTERM stops it (server.stop()), a real SDK device,
// and the fake OpenAI-compatible server streaming a reply slowly enough to be running at the stop.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChatService } from "../../src/chat";
import { type ChatDone, DeviceClient } from "../../src/client";
import {
  createTestContext,
  eventually,
  type FakeOpenAi,
  startFakeOpenAi,
  type TestContext,
} from "../../src/shared/testing";

let ctx: TestContext;
let llm: FakeOpenAi;
beforeAll(async () => {
  ctx = await createTestContext();
  llm = startFakeOpenAi();
  llm.onStructured(() => ({ json: { facts: [] } }));
});
afterAll(async () => {
  await ctx.close();
  llm.close();
});

const WORDS = Array.from({ length: 10 }, (_, i) => `word${i} `);

async function instanceWithTurnRunning(graceMs: number, chunkDelayMs: number) {
  const server = await ctx.start([(platform) => createChatService(platform)], {
    service: "chat",
    env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", SHUTDOWN_GRACE_MS: String(graceMs) },
  });
  const userId = crypto.randomUUID();
  const device = new DeviceClient({
    url: `${server.url.replace(/^http/, "ws")}/api/v1/ws/device`,
    deviceId: "laptop",
    token: () => ctx.token(userId, "free"),
    tools: {},
    backoff: { initialMs: 5000, maxMs: 5000 },
  });
  ctx.defer(() => device.close());
  await device.connect();
  const closes: number[] = [];
  device.on("close", ({ code }) => closes.push(code));
  llm.script({ chunks: WORDS, chunkDelayMs });
  const calls = llm.chatRequests().length;
  const stream = device.chat({ text: "ten words please" });
  let text = "";
  const received = (async () => {
    for await (const frame of stream) {
      const chunk = frame.chunk as { type: string; delta?: string };
      if (chunk.type === "text-delta") text += chunk.delta;
    }
  })();
  await eventually(
    () => llm.chatRequests().length,
    (count) => count > calls,
  );
  return { server, device, stream, received, closes, text: () => text };
}

describe("SIGTERM with turns running on device sockets", () => {
  test("a turn that fits in the grace period finishes in full, then the socket closes with 1001", async () => {
    // About a second of streaming left when the stop begins, with three seconds of grace.
    const turn = await instanceWithTurnRunning(3000, 100);
    const stopped = turn.server.stop();
    // A new turn is refused while the running one finishes: the device resends it after reconnecting.
    await eventually(
      () => turn.device.chat({ text: "one more" }).done.catch((error: { code?: string }) => error.code),
      (code) => code === "server_restarting",
    );
    const done: ChatDone = await turn.stream.done;
    await turn.received;
    expect(done).toMatchObject({ type: "chat_done", finish_reason: "stop" });
    expect(turn.text()).toBe(WORDS.join(""));
    await stopped;
    expect(turn.closes).toContain(1001);
  }, 20_000);

  test("a turn outliving the grace period ends as interrupted, with the part already sent", async () => {
    // About five seconds of streaming, half a second of grace.
    const turn = await instanceWithTurnRunning(500, 500);
    const started = performance.now();
    const stopped = turn.server.stop();
    const done = await turn.stream.done;
    await turn.received;
    expect(done).toMatchObject({ type: "chat_done", finish_reason: "interrupted" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(450);
    expect(turn.text().length).toBeLessThan(WORDS.join("").length);
    await stopped;
    expect(turn.closes).toContain(1001);
  }, 20_000);
});
