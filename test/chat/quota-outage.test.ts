// The daily chat quota while Redis is away. Strategy: the chat instance reaches Redis through a
// TcpProxy the test cuts and restores; the LLM is the fake OpenAI-compatible server. The quota must
// keep answering (per instance, from the count Redis last reported) and give Redis back every unit
// it counted alone once Redis returns.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { utcDay } from "../../src/chat/quota";
import { eventually, TcpProxy, TEST_REDIS_URL, viaProxy } from "../../src/shared/testing";
import { type ChatHarness, startChat } from "./harness";

const proxy = new TcpProxy("127.0.0.1", Number(new URL(TEST_REDIS_URL).port || 6379));
let h: ChatHarness;
let direct: Redis;
beforeAll(async () => {
  proxy.start();
  // A roomy Redis timeout: on a loaded machine the default 100 ms would send checks after the outage
  // to the per-instance fallback too, which is the designed behaviour but not what this test reads.
  h = await startChat({
    env: { REDIS_URL: viaProxy(TEST_REDIS_URL, proxy.port), RATE_LIMIT_REDIS_TIMEOUT_MS: "2000" },
  });
  direct = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  direct.disconnect();
  await h[Symbol.asyncDispose]();
  proxy.stop();
});

const FREE_LIMIT = 50;
const status = async (response: Promise<Response>) => {
  const answer = await response;
  const body = (await answer.json()) as { error?: { code: string } };
  return body.error ? `${answer.status} ${body.error.code}` : String(answer.status);
};

describe("daily quota during a Redis outage", () => {
  test("chat keeps answering, a user at the limit stays refused, and Redis gets the units back", async () => {
    const userId = crypto.randomUUID();
    const token = await h.token(userId, "free");
    const quotaKey = h.platform.keys.quota("chat_messages", userId, utcDay(new Date()));
    for (let i = 0; i < FREE_LIMIT - 4; i++) await h.parts.engine.quota.consume("chat_messages", userId, FREE_LIMIT);
    expect(await direct.get(quotaKey)).toBe(String(FREE_LIMIT - 4));

    proxy.cut();
    await eventually(
      () => h.platform.redis?.status,
      (value) => value !== "ready",
    );
    h.llm.script(...Array.from({ length: 4 }, (_, i) => ({ text: `reply ${i}` })));
    const during: string[] = [];
    for (let i = 0; i < 5; i++) during.push(await status(h.chatJson(token, { text: `message ${i}` })));
    expect(during).toEqual(["200", "200", "200", "200", "429 quota_exceeded"]);
    // Nothing reached Redis while it was away.
    expect(await direct.get(quotaKey)).toBe(String(FREE_LIMIT - 4));

    proxy.resume();
    await eventually(
      () => h.platform.redis?.status,
      (value) => value === "ready",
    );
    // The next check adds the units counted alone before asking Redis: the day is full there too.
    expect(await status(h.chatJson(token, { text: "after" }))).toBe("429 quota_exceeded");
    expect(await direct.get(quotaKey)).toBe(String(FREE_LIMIT));
    expect(await direct.ttl(quotaKey)).toBeGreaterThan(0);
  }, 30_000);
});
