// Setup journeys over HTTP with a real database; the model is an ai/test mock scripted by
// support/brain.ts (the user gives `path=<dir>`, then says yes).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { startAgent } from "./support/agents";
import { memoryDevice } from "./support/fakes";
import { type Api, api, expectUnauthenticated } from "./support/http";

let ctx: TestContext;
let base: string;
let ada: Api;

beforeAll(async () => {
  ctx = await createTestContext();
  base = (await startAgent(ctx, memoryDevice())).url;
});
afterAll(() => ctx.close());
// A user of her own per test: each test spends part of the tier's journey turns per minute.
beforeEach(async () => {
  ada = api(base, await ctx.token(`ada-${crypto.randomUUID()}`, "pro"));
});

describe("setup journeys", () => {
  test("a conversation fills the configuration, the user confirms, and it is created", async () => {
    const started = await ada("POST", "/journey/start", { agent_type: "filesystem" });
    expect(started.status).toBe(201);
    expect(started.body).toEqual({
      journey_id: expect.any(String),
      agent_type: "filesystem",
      status: "collecting",
      reply: expect.any(String),
      draft: {},
      missing: ["path"],
      type: "filesystem",
    });
    const id = started.body.journey_id;

    const vague = await ada("POST", "/journey/message", { journey_id: id, text: "scan my stuff" });
    expect(vague.body).toMatchObject({
      status: "collecting",
      reply: "Which directory should I scan?",
      missing: ["path"],
    });

    const filled = await ada("POST", "/journey/message", { journey_id: id, text: "path=/home/ada/Documents" });
    expect(filled.body).toMatchObject({ status: "confirming", draft: { path: "/home/ada/Documents" }, missing: [] });

    const done = await ada("POST", "/journey/message", { journey_id: id, text: "yes please" });
    expect(done.status).toBe(200);
    expect(done.body.status).toBe("completed");
    expect(done.body.config_id).toBe(done.body.config.id);
    expect(done.body.config).toMatchObject({
      type: "filesystem",
      config: { path: "/home/ada/Documents", recursive: true },
    });
    expect((await ada("GET", `/configs/${done.body.config.id}`)).status).toBe(200);

    const again = await ada("POST", "/journey/message", { journey_id: id, confirm: true });
    expect(again.status).toBe(409);
    expect((await ada("GET", "/configs")).body.configs).toHaveLength(1);
  });

  test("confirming before the configuration is complete is 409 with what is missing", async () => {
    const { body } = await ada("POST", "/journey/start", { type: "filesystem" });
    const early = await ada("POST", "/journey/message", { journey_id: body.journey_id, confirm: true });
    expect(early.status).toBe(409);
    expect(early.body.error).toMatchObject({ code: "journey_incomplete", message: expect.stringContaining("path") });
  });

  test("the journey respects the tier: a type above it is 403, a full quota refuses to start", async () => {
    const forbidden = await ada("POST", "/journey/start", { type: "timeline_batch" });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.code).toBe("tier_insufficient");
    const free = api(base, await ctx.token("frank", "free"));
    await free("POST", "/configs", { type: "filesystem", config: { path: "/x" } });
    const full = await free("POST", "/journey/start", { type: "filesystem" });
    expect(full.status).toBe(403);
    expect(full.body.error.code).toBe("config_limit_reached");
  });

  test("the agent type may still be named `type` (deprecated); naming none is 422", async () => {
    const legacy = await ada("POST", "/journey/start", { type: "filesystem" });
    expect(legacy.status).toBe(201);
    expect(legacy.body).toMatchObject({ agent_type: "filesystem", type: "filesystem", status: "collecting" });
    const missing = await ada("POST", "/journey/start", {});
    expect(missing.status).toBe(422);
    expect((await ada("POST", "/journey/start", { agent_type: "filesystem", kind: "x" })).status).toBe(422);
  });

  test("bad input is 422; another user's journey is 404; both routes need a token", async () => {
    expect((await ada("POST", "/journey/start", { agent_type: "nope" })).status).toBe(422);
    expect((await ada("POST", "/journey/start", { type: "nope" })).status).toBe(422);
    expect((await ada("POST", "/journey/message", { journey_id: crypto.randomUUID() })).status).toBe(422);
    const { body } = await ada("POST", "/journey/start", { type: "filesystem" });
    const bob = api(base, await ctx.token("bob", "pro"));
    expect((await bob("POST", "/journey/message", { journey_id: body.journey_id, text: "hi" })).status).toBe(404);
    expect((await ada("POST", "/journey/message", { journey_id: "nope", text: "hi" })).status).toBe(404);
    await expectUnauthenticated(ada, "POST", "/journey/start", { type: "filesystem" });
    await expectUnauthenticated(ada, "POST", "/journey/message", { journey_id: body.journey_id, text: "hi" });
  });
});
