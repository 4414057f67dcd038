// Setup journeys driven from the device WebSocket: a real chat instance holds the socket of an SDK
// device, a separate agent instance (same database and Redis, production wiring) takes the relayed
// turns from the journey queue, and the model is the fake OpenAI-compatible server answering with
// the deterministic brain of support/brain.ts (`path=<dir>` fills the draft, "yes" confirms).
// Embedded mode runs both services on one platform with no Redis.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createAgentService } from "../../src/agent";
import { agentJourneys } from "../../src/agent/tables";
import { createChatService } from "../../src/chat";
import type { DeviceClient, ErrorFrame } from "../../src/client";
import { openJourneyQueue } from "../../src/shared/journey-relay";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { startFakeOpenAi } from "../../src/shared/testing/fake-openai";
import { TIER_LIMITS, type Tier } from "../../src/shared/tiers";
import { connectDevice, startChat, wsUrl } from "../chat/gateway/helpers";
import { brainReply } from "./support/fake-llm";
import { type Api, api } from "./support/http";
import { createWorld, type World } from "./support/world";

const failure = (promise: Promise<unknown>) => promise.then(() => undefined).catch((error) => error);

/** An SDK device on `url` for a new user of `tier`, with every `error` frame it receives. */
async function device(ctx: TestContext, url: string, tier: Tier, userId = `user-${crypto.randomUUID()}`) {
  const client = await connectDevice(ctx, { url, userId, token: () => ctx.token(userId, tier) });
  const errors: ErrorFrame[] = [];
  client.on("error", (frame) => errors.push(frame));
  return { client, errors, userId };
}

describe("journeys over the device socket, with an agent replica", () => {
  let ctx: TestContext;
  let world: World;
  let agentUrl: string;
  const http = async (userId: string, tier: Tier): Promise<Api> => api(agentUrl, await ctx.token(userId, tier));

  beforeAll(async () => {
    ctx = await createTestContext();
    world = await createWorld(ctx);
    agentUrl = (await world.startAgent()).url;
  });
  afterAll(() => ctx.close());

  test("a journey started and completed over the socket creates the configuration", async () => {
    const { client, userId } = await device(ctx, world.chat.wsUrl, "pro");
    const started = await client.startJourney("filesystem", { requestId: "r-start" });
    expect(started).toEqual({
      type: "journey",
      request_id: "r-start",
      journey_id: expect.any(String),
      agent_type: "filesystem",
      status: "collecting",
      reply: "Which directory should I scan?",
      message: "Which directory should I scan?",
      draft: {},
      missing: ["path"],
    });
    const id = started.journey_id;
    const filled = await client.sendJourneyMessage(id, "path=/home/ada/Documents");
    expect(filled).toMatchObject({ status: "confirming", draft: { path: "/home/ada/Documents" }, missing: [] });
    const done = await client.sendJourneyMessage(id, undefined, { confirm: true });
    expect(done).toMatchObject({ journey_id: id, status: "completed", config_id: expect.any(String) });
    expect(done.config).toMatchObject({ id: done.config_id, type: "filesystem" });

    const configs = (await (await http(userId, "pro"))("GET", "/configs")).body.configs;
    expect(configs).toEqual([
      expect.objectContaining({
        id: done.config_id,
        type: "filesystem",
        config: expect.objectContaining({ path: "/home/ada/Documents" }),
      }),
    ]);
    expect(await failure(client.sendJourneyMessage(id, undefined, { confirm: true }))).toMatchObject({
      code: "journey_completed",
    });
  });

  test("the model's own confirmation completes the journey too", async () => {
    const { client } = await device(ctx, world.chat.wsUrl, "pro");
    const { journey_id } = await client.startJourney("filesystem");
    await client.sendJourneyMessage(journey_id, "path=/srv/notes");
    expect(await client.sendJourneyMessage(journey_id, "yes please")).toMatchObject({
      status: "completed",
      reply: expect.stringContaining("Created"),
      config_id: expect.any(String),
    });
  });

  test("REST and the socket answer a journey turn with the same fields", async () => {
    const { client, userId } = await device(ctx, world.chat.wsUrl, "pro");
    const rest = await http(userId, "pro");
    const overRest = await rest("POST", "/journey/start", { agent_type: "filesystem" });
    const overSocket = await client.startJourney("filesystem");
    // Apart from what each transport adds: the frame's type and request id, the deprecated aliases.
    const { type: restAlias, ...restView } = overRest.body;
    const { type: frameType, request_id, message, ...socketView } = overSocket;
    expect({ restAlias, frameType, message }).toEqual({
      restAlias: "filesystem",
      frameType: "journey",
      message: socketView.reply,
    });
    expect(restView).toEqual({ ...socketView, journey_id: restView.journey_id });
    expect(Object.keys(restView).sort()).toEqual(["agent_type", "draft", "journey_id", "missing", "reply", "status"]);

    for (const view of [restView, socketView]) {
      await rest("POST", "/journey/message", { journey_id: view.journey_id, text: "path=/srv/same" });
    }
    const restDone = (await rest("POST", "/journey/message", { journey_id: restView.journey_id, confirm: true })).body;
    const {
      request_id: _,
      type: __,
      message: ___,
      ...socketDone
    } = await client.sendJourneyMessage(socketView.journey_id, undefined, { confirm: true });
    expect(Object.keys(restDone).sort()).toEqual([...Object.keys(socketDone), "type"].sort());
    expect(restDone).toMatchObject({
      status: "completed",
      config_id: restDone.config.id,
      config: { type: "filesystem", config: { path: "/srv/same" } },
    });
    expect(socketDone).toMatchObject({
      status: "completed",
      config_id: socketDone.config?.id,
      config: { type: "filesystem", config: { path: "/srv/same" } },
    });
  });

  test("malformed journey frames get an error frame naming the request; the socket stays usable", async () => {
    const { client, errors } = await device(ctx, world.chat.wsUrl, "pro");
    client.send({ type: "journey_start", request_id: "m1" });
    client.send({ type: "journey_message", request_id: "m2", journey_id: crypto.randomUUID() });
    client.send({ type: "journey_message", request_id: "m3", journey_id: "x", text: "t".repeat(4001) });
    client.send({ type: "journey_start", request_id: "m4", agent_type: 42 });
    const seen = await eventually(
      () => errors,
      (frames) => frames.length === 4,
    );
    expect(seen.map((frame) => [frame.ref, frame.code])).toEqual([
      ["m1", "invalid_frame"],
      ["m2", "invalid_frame"],
      ["m3", "invalid_frame"],
      ["m4", "invalid_frame"],
    ]);
    expect(await failure(client.startJourney("no_such_agent"))).toMatchObject({ code: "validation_failed" });
    expect((await client.startJourney("filesystem")).status).toBe("collecting");
  });

  test("another user's journey, or an id that names nothing, is not_found", async () => {
    const ada = await device(ctx, world.chat.wsUrl, "pro");
    const { journey_id } = await ada.client.startJourney("filesystem");
    const bob = await device(ctx, world.chat.wsUrl, "power");
    expect(await failure(bob.client.sendJourneyMessage(journey_id, "path=/stolen"))).toMatchObject({
      code: "not_found",
      message: "journey not found",
    });
    expect(await failure(bob.client.sendJourneyMessage("not-an-id", "hi"))).toMatchObject({ code: "not_found" });
    const [row] = await world.chat.platform.db.select().from(agentJourneys).where(eq(agentJourneys.id, journey_id));
    expect(row?.draft).toEqual({});
  });

  test("the tier applies: a type above it is tier_insufficient, a full quota is config_limit_reached", async () => {
    const pro = await device(ctx, world.chat.wsUrl, "pro");
    expect(await failure(pro.client.startJourney("timeline_batch"))).toMatchObject({ code: "tier_insufficient" });
    const free = await device(ctx, world.chat.wsUrl, "free");
    await (await http(free.userId, "free"))("POST", "/configs", { type: "filesystem", config: { path: "/x" } });
    expect(await failure(free.client.startJourney("filesystem"))).toMatchObject({ code: "config_limit_reached" });
  });

  test("a tier upgraded on the open socket applies to the next journey", async () => {
    const userId = `user-${crypto.randomUUID()}`;
    let tier: Tier = "pro";
    const client: DeviceClient = await connectDevice(ctx, {
      url: world.chat.wsUrl,
      userId,
      token: () => ctx.token(userId, tier),
    });
    expect(await failure(client.startJourney("timeline_batch"))).toMatchObject({ code: "tier_insufficient" });
    tier = "power";
    await client.renewToken();
    // The renewal has no answer frame: retry until the gateway has taken the new tier.
    const started = await eventually(
      () => client.startJourney("timeline_batch").catch(() => undefined),
      (frame) => frame !== undefined,
    );
    expect(started).toMatchObject({ agent_type: "timeline_batch", status: "collecting" });
  });

  test("the SDK refuses a journey request on a closed socket", async () => {
    const { client } = await device(ctx, world.chat.wsUrl, "pro");
    client.close();
    expect(await failure(client.startJourney("filesystem"))).toMatchObject({ message: "the device is not connected" });
  });

  test("journey frames spend the chat frames' requests per minute and the journey turns per minute", async () => {
    const { client, errors } = await device(ctx, world.chat.wsUrl, "free");
    // Free: 20 frames per minute on the chat instance, of which the agent answers 5 journey turns.
    // Ids that name nothing cost the agent one query each.
    for (let i = 0; i < 21; i++) {
      client.send({ type: "journey_message", request_id: `q${i}`, journey_id: crypto.randomUUID(), text: "hi" });
    }
    const seen = await eventually(
      () => errors,
      (frames) => frames.length === 21,
      15_000,
    );
    const limited = seen.filter((frame) => frame.code === "rate_limited");
    expect(limited).toHaveLength(16);
    for (const frame of limited) {
      expect(frame).toEqual({
        type: "error",
        code: "rate_limited",
        message: expect.any(String),
        ref: expect.any(String),
        retry_after_ms: expect.any(Number),
      });
      expect(frame.retry_after_ms).toBeGreaterThan(0);
    }
    expect(seen.filter((frame) => frame.code === "not_found")).toHaveLength(TIER_LIMITS.free.journeyTurnsPerMinute);
    expect(await failure(client.chat({ text: "hello" }).done)).toMatchObject({ code: "rate_limited" });
  });

  test("the socket and the HTTP routes share one journey budget per user; another user keeps theirs", async () => {
    const { client, errors, userId } = await device(ctx, world.chat.wsUrl, "free");
    const call = await http(userId, "free");
    const started = await call("POST", "/journey/start", { type: "filesystem" });
    expect(started.status).toBe(201);
    for (let i = 1; i < TIER_LIMITS.free.journeyTurnsPerMinute; i++) {
      const turn = await call("POST", "/journey/message", { journey_id: started.body.journey_id, text: "hm" });
      expect(turn.status).toBe(200);
    }
    expect(await failure(client.sendJourneyMessage(started.body.journey_id, "path=/srv"))).toMatchObject({
      code: "rate_limited",
    });
    expect(errors).toEqual([
      {
        type: "error",
        code: "rate_limited",
        message: expect.any(String),
        ref: expect.any(String),
        retry_after_ms: expect.any(Number),
      },
    ]);
    expect(errors[0]?.retry_after_ms).toBeGreaterThan(0);
    const other = await device(ctx, world.chat.wsUrl, "free");
    expect(await other.client.startJourney("filesystem")).toMatchObject({ type: "journey", status: "collecting" });
  });
});

describe("journeys over the device socket, with no agent replica running", () => {
  let ctx: TestContext;
  let world: World;
  beforeEach(async () => {
    ctx = await createTestContext();
    world = await createWorld(ctx);
  });
  afterEach(() => ctx.close());

  test("the request waits in the queue and is answered once a replica starts", async () => {
    const { client } = await device(ctx, world.chat.wsUrl, "pro");
    const answer = client.startJourney("filesystem");
    const queue = openJourneyQueue(world.chat.platform);
    ctx.defer(() => queue.close());
    await eventually(
      () => queue.counts(),
      (counts) => counts.waiting === 1,
    );
    await world.startAgent();
    expect(await answer).toMatchObject({ status: "collecting", agent_type: "filesystem" });
  });

  test("past its deadline the request is withdrawn and the device told agent_unavailable", async () => {
    const chat = await startChat(ctx, { env: { JOURNEY_QUEUE_TIMEOUT_MS: "300" } });
    const { client } = await device(ctx, chat.wsUrl, "pro");
    expect(await failure(client.startJourney("filesystem"))).toMatchObject({
      code: "agent_unavailable",
      message: expect.stringContaining("in time"),
    });
    // Withdrawn, not merely timed out: a replica starting later will not run it.
    const queue = openJourneyQueue(chat.platform);
    ctx.defer(() => queue.close());
    expect(await queue.counts()).toEqual({ waiting: 0, active: 0 });
  });

  test("a request found expired by the agent is dropped and the device told", async () => {
    const { client, errors, userId } = await device(ctx, world.chat.wsUrl, "pro");
    const deviceId = (await world.chat.gateway.rpc.devices(userId))[0]?.deviceId as string;
    // As left behind by a chat instance that stopped before the request's deadline.
    const queue = openJourneyQueue(world.chat.platform);
    ctx.defer(() => queue.close());
    await queue.add(crypto.randomUUID(), {
      userId,
      tier: "pro",
      deviceId,
      requestId: "stale",
      expiresAt: Date.now() - 1,
      action: "start",
      input: { type: "filesystem" },
    });
    await world.startAgent();
    const [frame] = await eventually(
      () => errors,
      (frames) => frames.length > 0,
    );
    expect(frame).toMatchObject({ code: "agent_unavailable", ref: "stale" });
    const rows = await world.chat.platform.db.select().from(agentJourneys).where(eq(agentJourneys.userId, userId));
    expect(rows).toEqual([]);
    expect(client.status).toBe("open");
  });
});

describe("journeys over the device socket in embedded mode", () => {
  test("chat and agent in one process meet on the in-process queue", async () => {
    await using ctx = await createTestContext();
    const llm = startFakeOpenAi().onChat(brainReply);
    ctx.defer(() => llm.close());
    const server = await ctx.start([createChatService, (platform) => createAgentService(platform)], {
      redis: false,
      env: { LLM_BASE_URL: llm.url },
    });
    expect(server.platform.redis).toBeUndefined();
    const { client } = await device(ctx, wsUrl(server.url), "pro");
    const { journey_id } = await client.startJourney("filesystem");
    await client.sendJourneyMessage(journey_id, "path=/data");
    expect(await client.sendJourneyMessage(journey_id, undefined, { confirm: true })).toMatchObject({
      status: "completed",
      config_id: expect.any(String),
    });
  });
});
