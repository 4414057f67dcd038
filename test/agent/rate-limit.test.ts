// The agent service's per-user, per-tier limits over HTTP on a real server, PostgreSQL and Redis:
// every route spends the tier's requests per minute, the journey routes (a model call each) also a
// tighter journey budget. The model is an ai/test mock that counts its calls.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { TIER_LIMITS } from "../../src/shared/tiers";
import { startAgent } from "./support/agents";
import { memoryDevice, mockModels } from "./support/fakes";
import { type Api, api } from "./support/http";

let ctx: TestContext;
let base: string;
const modelCalls = { count: 0 };

beforeAll(async () => {
  ctx = await createTestContext();
  base = (await startAgent(ctx, memoryDevice(), {}, { models: mockModels({ calls: modelCalls }) })).url;
});
afterAll(() => ctx.close());

const freeUser = async (): Promise<Api> => api(base, await ctx.token(`user-${crypto.randomUUID()}`, "free"));
const limitOf = (response: { status: number; body: { error?: { code: string } }; headers: Headers }) => ({
  status: response.status,
  code: response.body?.error?.code,
  policy: response.headers.get("ratelimit-policy"),
  retryAfter: Number(response.headers.get("retry-after")) > 0,
});

describe("the agent service's requests per minute", () => {
  test("a free user gets 20 reads a minute, then 429 with RateLimit headers; another user is unaffected", async () => {
    const ada = await freeUser();
    const first = await ada("GET", "/configs");
    expect({ status: first.status, policy: first.headers.get("ratelimit-policy") }).toEqual({
      status: 200,
      policy: '"agent";q=20;w=60',
    });
    for (let i = 1; i < TIER_LIMITS.free.requestsPerMinute; i++)
      expect((await ada("GET", "/configs")).status).toBe(200);
    expect(limitOf(await ada("GET", "/configs"))).toEqual({
      status: 429,
      code: "rate_limited",
      policy: '"agent";q=20;w=60',
      retryAfter: true,
    });
    expect((await ada("GET", "/catalog")).status).toBe(429);
    expect((await (await freeUser())("GET", "/configs")).status).toBe(200);
  });
});

describe("journey turns", () => {
  test("a free user gets 5 turns a minute, then 429, while reads go on; another user is unaffected", async () => {
    const ada = await freeUser();
    const started = await ada("POST", "/journey/start", { type: "filesystem" });
    expect({ status: started.status, policy: started.headers.get("ratelimit-policy") }).toEqual({
      status: 201,
      policy: '"agent";q=20;w=60, "agent-journey";q=5;w=60',
    });
    const id = started.body.journey_id;
    for (let i = 1; i < TIER_LIMITS.free.journeyTurnsPerMinute; i++) {
      expect((await ada("POST", "/journey/message", { journey_id: id, text: "scan my stuff" })).status).toBe(200);
    }
    expect(limitOf(await ada("POST", "/journey/message", { journey_id: id, text: "scan my stuff" }))).toEqual({
      status: 429,
      code: "rate_limited",
      policy: '"agent-journey";q=5;w=60',
      retryAfter: true,
    });
    expect(limitOf(await ada("POST", "/journey/start", { type: "filesystem" })).status).toBe(429);
    expect((await ada("GET", "/configs")).status).toBe(200);
    expect((await (await freeUser())("POST", "/journey/start", { type: "filesystem" })).status).toBe(201);
  });

  test("100 journey messages at once from a free user reach the model only as often as the budget allows", async () => {
    const ada = await freeUser();
    const { journey_id } = (await ada("POST", "/journey/start", { type: "filesystem" })).body;
    const before = modelCalls.count;
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => ada("POST", "/journey/message", { journey_id, text: "scan my stuff" })),
    );
    const statuses = answers.map((each) => each.status);
    // One turn went on the start; the plain budget (20) refuses some before the journey budget does.
    expect(statuses.filter((status) => status === 200)).toHaveLength(TIER_LIMITS.free.journeyTurnsPerMinute - 1);
    expect(statuses.filter((status) => status === 429)).toHaveLength(
      100 - (TIER_LIMITS.free.journeyTurnsPerMinute - 1),
    );
    expect(modelCalls.count - before).toBe(TIER_LIMITS.free.journeyTurnsPerMinute - 1);
  });
});
