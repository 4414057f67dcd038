// Strategy: the plugins service and a chat instance run as two services (each its own platform,
// Redis connections and consumers) on one PostgreSQL and one Redis key prefix, as replicas would in
// production; they meet only through the lookup queue and `pluginsChanged`
// (src/shared/plugin-tools.ts). Everything goes through their HTTP and WebSocket APIs with signed
// tokens: a developer registers an Ed25519 key and publishes signed manifests, an admin named in
// PLUGINS_ADMIN_USER_IDS approves, users search the marketplace and install with the grants they
// choose. A remote plugin's endpoint is a real MCP server (the official SDK over streamable HTTP),
// the model is the scripted fake OpenAI server, and each user's device is the SDK's DeviceClient on
// chat's WebSocket, answering device tools and collecting `plugins` frames.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { UIMessageChunk } from "ai";
import { DeviceClient, type PluginsFrame, type ToolHandler } from "../../src/client";
import { announceTierChanged } from "../../src/shared/events/tier-changed";
import { eventually, type FakeOpenAi, startFakeOpenAi } from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";
import { type ChatInstance, startChat } from "../chat/gateway/helpers";
import { promptOf, readSse } from "../chat/harness";
import { startMcpServer, type TestMcpServer } from "../chat/plugin-servers";
import { type Developer, manifest, newUserId, type Plugins, startPlugins } from "../plugins/harness";

const PSEUDONYM_KEY = "the-pseudonym-key-of-this-deployment-0123456789";
const TASKS = { tasks: [{ id: "t1", title: "Pay rent", status: "open" }] };
const NOTES = { notes: [{ id: "n1", title: "Rent", body: "Paid on the first" }] };

let p: Plugins;
let chat: ChatInstance;
let llm: FakeOpenAi;
let mcp: TestMcpServer;
let developer: Developer;
let keyDir: string;

beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), "plugins-e2e-"));
  writeFileSync(join(keyDir, "pseudonym.key"), `${PSEUDONYM_KEY}\n`);
  p = await startPlugins();
  llm = startFakeOpenAi();
  p.ctx.defer(() => llm.close());
  // Memory extraction after each turn finds nothing, and never takes a reply scripted for a turn.
  llm.onStructured(() => ({ json: { facts: [] } }));
  mcp = await startMcpServer();
  p.ctx.defer(() => mcp.close());
  chat = await startChat(p.ctx, {
    env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", PLUGIN_PSEUDONYM_KEY_FILE: join(keyDir, "pseudonym.key") },
  });
  developer = await p.developer();
});
afterAll(async () => {
  await p.ctx.close();
  rmSync(keyDir, { recursive: true, force: true });
});

const short = () => crypto.randomUUID().slice(0, 8);
/** A word no other listing holds, for the marketplace's full-text search. */
const uniqueWord = () =>
  Array.from({ length: 12 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join("");
/** Grants of device tools only. */
const deviceGrants = (...deviceTools: string[]) => ({ device_tools: deviceTools, origins: [], data: [] });

/** The test MCP server's tools a manifest declares: an answer, and one that asks the app for a device tool. */
const SERVER_TOOLS = [
  { name: "lookup_weather", description: "The weather in a city" },
  { name: "device_tasks", description: "Reads the user's tasks through the app" },
];

/** A remote plugin's manifest whose endpoint is the test MCP server. */
function remoteManifest(
  slug: string,
  options: { version?: string; deviceTools?: string[]; tools?: typeof SERVER_TOOLS; description?: string } = {},
) {
  return {
    ...manifest({
      slug,
      version: options.version,
      description: options.description,
      endpoint: mcp.url,
      deviceTools: options.deviceTools ?? [],
      origins: [],
      data: [],
    }),
    tools: options.tools ?? SERVER_TOOLS,
  };
}

/** A local plugin's manifest: a package the app downloads and checks against its digest. */
function localManifest(slug: string, options: { tiers?: string[] } = {}) {
  const bytes = `the ${slug} package`;
  return {
    ...manifest({ slug, local: true, deviceTools: ["note_create"], origins: [], data: [], tiers: options.tiers }),
    runtime: {
      type: "local",
      package: {
        url: `https://cdn.example.com/${slug}-1.0.0.tgz`,
        sha256: createHash("sha256").update(bytes).digest("hex"),
      },
    },
    tools: [{ name: "clipboard_read", description: "Reads the clipboard" }],
  };
}

interface Person {
  userId: string;
  token: string;
}

async function person(): Promise<Person> {
  const userId = newUserId();
  return { userId, token: await p.token(userId, "pro") };
}

const installs = async (user: Person) => (await p.call("GET", "/installs", { token: user.token })).body.items;

/**
 * The user's device on chat: records each device tool call it runs and each `plugins` frame. Its
 * tokens are of `tier()` when it asks for one (a pro user unless said otherwise).
 */
async function connectDevice(user: Person, tier: () => Tier = () => "pro") {
  const calls: Array<{ name: string; args: unknown; origin: string }> = [];
  const frames: PluginsFrame[] = [];
  const answers: Record<string, unknown> = { task_list: TASKS, note_search: NOTES };
  const tools: Record<string, ToolHandler> = {};
  for (const [name, result] of Object.entries(answers)) {
    tools[name] = (args, context) => {
      calls.push({ name, args, origin: context.origin });
      return result;
    };
  }
  const client = new DeviceClient({
    url: chat.wsUrl,
    deviceId: `device-${short()}`,
    token: () => p.token(user.userId, tier()),
    tools,
    backoff: { initialMs: 50, maxMs: 400 },
  });
  p.ctx.defer(() => client.close());
  client.on("plugins", (frame) => frames.push(frame));
  await client.connect();
  // The list after `welcome`: later frames are the changes.
  await eventually(
    () => frames.length,
    (count) => count > 0,
  );
  return { client, calls, frames };
}
type Device = Awaited<ReturnType<typeof connectDevice>>;

/**
 * Waits for the device's next `plugins` frame: the chat instance holding its socket heard
 * `pluginsChanged` (and forgot what it knew of the user's plugins) and looked them up again.
 */
async function nextFrame(device: Device, seen: number): Promise<PluginsFrame | undefined> {
  const frames = await eventually(
    () => device.frames,
    (all) => all.length > seen,
  );
  return frames[seen];
}

/** Streamed model requests so far: the index of the next turn's first one. */
const modelSteps = () => llm.chatRequests().filter((request) => request.stream).length;
/** The tool results the model was sent in its `index`th streamed request. */
const toolResults = (index: number) =>
  promptOf(llm, index)
    .messages.filter((message) => message.role === "tool")
    .map((message) => ({ id: message.tool_call_id, content: String(message.content) }));
const pluginToolsOffered = (index: number) => promptOf(llm, index).tools.filter((name) => name.includes("__"));

/** One turn over REST as SSE: its conversation and its chunks. */
async function restTurn(user: Person, text: string) {
  const response = await fetch(`${chat.url}/api/v1/chat`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${user.token}`,
      "content-type": "application/json",
      accept: "text/event-stream",
    },
    body: JSON.stringify({ text }),
  });
  expect(response.status).toBe(200);
  const chatId = response.headers.get("x-chat-id");
  return { chatId, ...(await readSse(response)) };
}

/** One turn sent by the device over its socket: its chunks and final frame. */
async function deviceTurn(device: Device, text: string) {
  const stream = device.client.chat({ text });
  const chunks: UIMessageChunk[] = [];
  for await (const frame of stream) chunks.push(frame.chunk as UIMessageChunk);
  return { chunks, done: await stream.done };
}

/** Publishes a plugin through review and returns its id. */
async function publish(body: Record<string, unknown>): Promise<string> {
  return p.publishLive(developer, body);
}

describe("plugins end to end", () => {
  test("a developer publishes a remote plugin, an admin approves it, a user finds and installs it, and a turn calls its tool on the MCP server", async () => {
    const slug = `weather-${short()}`;
    const word = uniqueWord();
    const body = remoteManifest(slug, { description: `Forecasts ${word} for anywhere`, deviceTools: ["task_list"] });
    const user = await person();
    const search = async () => (await p.call("GET", `/catalog?q=${word}`, { token: user.token })).body.items;

    const created = await p.create(developer, body);
    expect(created.status).toBe(201);
    const pluginId = created.body.id as string;
    expect(await search()).toEqual([]);
    expect((await p.submit(developer, pluginId, "1.0.0")).status).toBe(200);
    expect(await search()).toEqual([]);
    const approved = await p.approve(pluginId, "1.0.0");
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ status: "published", version: "1.0.0" });

    const found = await search();
    expect(found).toEqual([expect.objectContaining({ id: pluginId, slug, version: "1.0.0", runtime_type: "remote" })]);
    const installed = await p.install(user.token, pluginId, deviceGrants("task_list"));
    expect(installed.status).toBe(201);
    expect(installed.body).toMatchObject({ plugin_id: pluginId, version: "1.0.0", grants: deviceGrants("task_list") });
    await connectDevice(user);

    const city = `Paris-${short()}`;
    llm.script(
      { toolCalls: [{ id: "call_weather", name: `${slug}__lookup_weather`, args: { city } }] },
      { text: `It is sunny in ${city}.` },
    );
    const first = modelSteps();
    const headersBefore = mcp.headers.length;
    const { chatId, chunks, done } = await restTurn(user, `Weather in ${city}?`);

    expect(pluginToolsOffered(first).sort()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);
    expect(mcp.calls.filter((call) => call.args.city === city)).toEqual([{ tool: "lookup_weather", args: { city } }]);
    expect(toolResults(first + 1)).toEqual([{ id: "call_weather", content: `Sunny in ${city}` }]);
    expect(chunks.find((chunk) => chunk.type === "tool-output-available")).toMatchObject({
      toolCallId: "call_weather",
      output: `Sunny in ${city}`,
    });
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
    expect(done).toBe(true);

    const stored = await fetch(`${chat.url}/api/v1/chat/conversations/${chatId}`, {
      headers: { authorization: `Bearer ${user.token}` },
    });
    const reply = ((await stored.json()) as { messages: Array<{ role: string; parts: unknown[] }> }).messages.find(
      (message) => message.role === "assistant",
    );
    expect(JSON.stringify(reply?.parts)).toContain(`Sunny in ${city}`);
    expect(JSON.stringify(reply?.parts)).toContain(`It is sunny in ${city}.`);

    // The server learned the user only as this plugin's pseudonym, keyed with the marketplace's plugin id.
    const pseudonym = createHmac("sha256", PSEUDONYM_KEY)
      .update(pluginId)
      .update("\0")
      .update(user.userId)
      .digest("base64url");
    const sent = mcp.headers.slice(headersBefore);
    expect(sent.length).toBeGreaterThan(0);
    expect(new Set(sent.map((headers) => headers["x-adiuva-pseudonym"]))).toEqual(new Set([pseudonym]));
    expect(JSON.stringify(sent)).not.toContain(user.userId);
  }, 15_000);

  test("a granted device tool asked for by the plugin runs on the user's device; an ungranted one is refused before the device", async () => {
    const slug = `tasks-${short()}`;
    const pluginId = await publish(remoteManifest(slug, { deviceTools: ["task_list", "note_search"] }));
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants("task_list"))).status).toBe(201);
    const device = await connectDevice(user);

    llm.script(
      {
        toolCalls: [
          { id: "call_granted", name: `${slug}__device_tasks`, args: { tool: "task_list" } },
          {
            id: "call_ungranted",
            name: `${slug}__device_tasks`,
            args: { tool: "note_search", args: { query: "rent" } },
          },
        ],
      },
      { text: "You have one task." },
    );
    const first = modelSteps();
    const { done } = await deviceTurn(device, "What are my tasks and notes?");
    expect(done.finish_reason).toBe("stop");

    expect(device.calls).toEqual([{ name: "task_list", args: { status: "open" }, origin: `plugin:${slug}` }]);
    const results = toolResults(first + 1);
    expect(results[0]).toEqual({ id: "call_granted", content: `device said ${JSON.stringify({ result: TASKS })}` });
    expect(results[1]?.id).toBe("call_ungranted");
    expect(results[1]?.content).toContain("plugin_error: device refused");
    expect(results[1]?.content).toContain(
      `permission_denied: the user did not grant the ${slug} plugin the device tool note_search`,
    );
  }, 15_000);

  test("after an uninstall the chat learns it at once: the tool is no longer offered and a forced call reaches no server", async () => {
    const slug = `gone-${short()}`;
    const pluginId = await publish(remoteManifest(slug));
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants())).status).toBe(201);
    const device = await connectDevice(user);

    // A first turn uses it, so the chat instance holds the user's plugins when the uninstall comes.
    const before = `Oslo-${short()}`;
    llm.script(
      { toolCalls: [{ id: "call_before", name: `${slug}__lookup_weather`, args: { city: before } }] },
      { text: "." },
    );
    let first = modelSteps();
    await restTurn(user, `Weather in ${before}?`);
    expect(toolResults(first + 1)).toEqual([{ id: "call_before", content: `Sunny in ${before}` }]);

    const frames = device.frames.length;
    expect((await p.call("DELETE", `/installs/${pluginId}`, { token: user.token })).status).toBe(204);
    expect(await nextFrame(device, frames)).toEqual({ type: "plugins", local: [] });
    expect(await installs(user)).toEqual([]);

    const after = `Bergen-${short()}`;
    llm.script(
      { toolCalls: [{ id: "call_after", name: `${slug}__lookup_weather`, args: { city: after } }] },
      { text: "I cannot." },
    );
    first = modelSteps();
    const { chunks } = await restTurn(user, `Weather in ${after}?`);
    expect(pluginToolsOffered(first)).toEqual([]);
    expect(toolResults(first + 1)).toEqual([
      {
        id: "call_after",
        content: expect.stringContaining(
          `tool_refused: ${slug}__lookup_weather is not a tool offered in this conversation`,
        ),
      },
    ]);
    expect(chunks.find((chunk) => chunk.type === "tool-input-error")).toMatchObject({ toolCallId: "call_after" });
    expect(mcp.calls.filter((call) => call.args.city === after)).toEqual([]);
  }, 15_000);

  test("a version asking for more keeps the user on the old grants until they consent through the upgrade route", async () => {
    const slug = `notes-${short()}`;
    const pluginId = await publish(remoteManifest(slug, { deviceTools: ["task_list"] }));
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants("task_list"))).status).toBe(201);
    const device = await connectDevice(user);

    // 1.1.0 asks for note_search too, and declares one more tool.
    const next = remoteManifest(slug, {
      version: "1.1.0",
      deviceTools: ["task_list", "note_search"],
      tools: [...SERVER_TOOLS, { name: "device_later", description: "Asks the app later" }],
    });
    await p.releaseVersion(developer, pluginId, next);
    expect(await installs(user)).toEqual([
      expect.objectContaining({
        plugin_id: pluginId,
        version: "1.0.0",
        grants: deviceGrants("task_list"),
        upgrade: {
          version: "1.1.0",
          needs_consent: true,
          permissions: deviceGrants("task_list", "note_search"),
          new_permissions: deviceGrants("note_search"),
        },
      }),
    ]);

    const askNotes = (id: string) => ({
      toolCalls: [{ id, name: `${slug}__device_tasks`, args: { tool: "note_search", args: { query: "rent" } } }],
    });
    llm.script(askNotes("call_old"), { text: "Not allowed." });
    let first = modelSteps();
    await deviceTurn(device, "Search my notes");
    expect(pluginToolsOffered(first).sort()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);
    expect(toolResults(first + 1)[0]?.content).toContain(
      `permission_denied: the user did not grant the ${slug} plugin the device tool note_search`,
    );
    expect(device.calls).toEqual([]);

    const frames = device.frames.length;
    const upgraded = await p.call("POST", `/installs/${pluginId}/upgrade`, {
      token: user.token,
      body: { grants: deviceGrants("task_list", "note_search") },
    });
    expect(upgraded.status).toBe(200);
    expect(upgraded.body).toMatchObject({ version: "1.1.0", upgrade: null });
    expect(await nextFrame(device, frames)).toBeDefined();

    llm.script(askNotes("call_new"), { text: "Found it." });
    first = modelSteps();
    await deviceTurn(device, "Search my notes again");
    expect(pluginToolsOffered(first).sort()).toEqual([
      `${slug}__device_later`,
      `${slug}__device_tasks`,
      `${slug}__lookup_weather`,
    ]);
    expect(device.calls).toEqual([{ name: "note_search", args: { query: "rent" }, origin: `plugin:${slug}` }]);
    expect(toolResults(first + 1)).toEqual([
      { id: "call_new", content: `device said ${JSON.stringify({ result: NOTES })}` },
    ]);
  }, 15_000);

  test("a local plugin installed reaches the device in a plugins frame, and its uninstall in the next one", async () => {
    const slug = `clip-${short()}`;
    const body = localManifest(slug);
    const pluginId = await publish(body);
    const user = await person();
    const device = await connectDevice(user);
    expect(device.frames).toEqual([{ type: "plugins", local: [] }]);

    expect((await p.install(user.token, pluginId, deviceGrants("note_create"))).status).toBe(201);
    expect(await nextFrame(device, 1)).toEqual({
      type: "plugins",
      local: [
        {
          id: pluginId,
          slug,
          version: "1.0.0",
          package: body.runtime.package,
          tools: [{ name: "clipboard_read", description: "Reads the clipboard" }],
          grants: deviceGrants("note_create"),
        },
      ],
    });

    expect((await p.call("DELETE", `/installs/${pluginId}`, { token: user.token })).status).toBe(204);
    expect(await nextFrame(device, 2)).toEqual({ type: "plugins", local: [] });
    expect(device.frames).toHaveLength(3);
  }, 15_000);

  test("another user's device never gets the first user's plugins frame, and their turns never get its tools", async () => {
    const remoteSlug = `mine-${short()}`;
    const remoteId = await publish(remoteManifest(remoteSlug));
    const localSlug = `pad-${short()}`;
    const localId = await publish(localManifest(localSlug));
    const owner = await person();
    const stranger = await person();
    const mine = await connectDevice(owner);
    const theirs = await connectDevice(stranger);

    expect((await p.install(owner.token, remoteId, deviceGrants())).status).toBe(201);
    expect((await p.install(owner.token, localId, deviceGrants("note_create"))).status).toBe(201);
    await eventually(
      () => mine.frames.at(-1)?.local.length,
      (count) => count === 1,
    );
    expect(mine.frames.at(-1)?.local.map((plugin) => plugin.id)).toEqual([localId]);

    // The stranger's turn runs over their own socket: any frame sent to it before comes first.
    const city = `Lima-${short()}`;
    llm.script(
      { toolCalls: [{ id: "call_stranger", name: `${remoteSlug}__lookup_weather`, args: { city } }] },
      { text: "No such tool." },
    );
    const first = modelSteps();
    await deviceTurn(theirs, `Weather in ${city}?`);
    expect(pluginToolsOffered(first)).toEqual([]);
    expect(toolResults(first + 1)[0]?.content).toContain(`tool_refused: ${remoteSlug}__lookup_weather`);
    expect(mcp.calls.filter((call) => call.args.city === city)).toEqual([]);
    expect(theirs.frames).toEqual([{ type: "plugins", local: [] }]);
    expect(theirs.calls).toEqual([]);
  }, 15_000);

  test("a version asking for nothing more moves the install on approval, and the next turn gets it with its grants narrowed", async () => {
    const slug = `auto-${short()}`;
    const pluginId = await publish(remoteManifest(slug, { deviceTools: ["task_list", "note_search"] }));
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants("task_list", "note_search"))).status).toBe(201);
    const device = await connectDevice(user);
    llm.script({ text: "Hello." });
    let first = modelSteps();
    await deviceTurn(device, "Hello");
    expect(pluginToolsOffered(first).sort()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);

    // 2.0.0 drops note_search and declares one more tool: no consent needed.
    const frames = device.frames.length;
    await p.releaseVersion(
      developer,
      pluginId,
      remoteManifest(slug, {
        version: "2.0.0",
        deviceTools: ["task_list"],
        tools: [...SERVER_TOOLS, { name: "device_later", description: "Asks the app later" }],
      }),
    );
    expect(await installs(user)).toEqual([
      expect.objectContaining({ version: "2.0.0", grants: deviceGrants("task_list"), upgrade: null }),
    ]);
    expect(await nextFrame(device, frames)).toBeDefined();

    llm.script(
      {
        toolCalls: [
          { id: "call_moved", name: `${slug}__device_tasks`, args: { tool: "note_search", args: { query: "rent" } } },
        ],
      },
      { text: "Not any more." },
    );
    first = modelSteps();
    await deviceTurn(device, "Search my notes");
    expect(pluginToolsOffered(first).sort()).toEqual([
      `${slug}__device_later`,
      `${slug}__device_tasks`,
      `${slug}__lookup_weather`,
    ]);
    expect(toolResults(first + 1)[0]?.content).toContain(
      `permission_denied: the user did not grant the ${slug} plugin the device tool note_search`,
    );
    expect(device.calls).toEqual([]);
  }, 15_000);

  test("a suspended plugin leaves the user's turns at once, and comes back when the suspension is lifted", async () => {
    const slug = `halt-${short()}`;
    const pluginId = await publish(remoteManifest(slug));
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants())).status).toBe(201);
    const device = await connectDevice(user);
    const admin = await p.adminToken();
    const offeredNow = async () => {
      llm.script({ text: "Hello." });
      const first = modelSteps();
      await deviceTurn(device, "Hello");
      return pluginToolsOffered(first).sort();
    };
    expect(await offeredNow()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);

    let frames = device.frames.length;
    const suspended = await p.call("POST", `/admin/plugins/${pluginId}/suspend`, {
      token: admin,
      body: { reason: "Abuse" },
    });
    expect(suspended.status).toBe(200);
    expect(await nextFrame(device, frames)).toBeDefined();
    expect(await offeredNow()).toEqual([]);

    frames = device.frames.length;
    expect((await p.call("POST", `/admin/plugins/${pluginId}/unsuspend`, { token: admin })).status).toBe(200);
    expect(await nextFrame(device, frames)).toBeDefined();
    expect(await offeredNow()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);
  }, 15_000);
  test("a pro-only plugin installed on pro is not offered to a turn with a free token, and its install says why", async () => {
    const slug = `pro-${short()}`;
    const pluginId = await publish({ ...remoteManifest(slug), tiers: ["pro", "power", "team"] });
    const user = await person();
    expect((await p.install(user.token, pluginId, deviceGrants())).status).toBe(201);
    const onFree: Person = { userId: user.userId, token: await p.token(user.userId, "free") };

    const city = `Quito-${short()}`;
    llm.script({ text: "Hello." });
    let first = modelSteps();
    await restTurn(user, "Hello");
    expect(pluginToolsOffered(first).sort()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);

    // The same user with a free token (the plan dropped): the turn is not offered it, and a forced call reaches nothing.
    llm.script(
      { toolCalls: [{ id: "call_free", name: `${slug}__lookup_weather`, args: { city } }] },
      { text: "I cannot." },
    );
    first = modelSteps();
    await restTurn(onFree, `Weather in ${city}?`);
    expect(pluginToolsOffered(first)).toEqual([]);
    expect(toolResults(first + 1)[0]?.content).toContain(`tool_refused: ${slug}__lookup_weather`);
    expect(mcp.calls.filter((call) => call.args.city === city)).toEqual([]);
    expect(await installs(onFree)).toEqual([
      expect.objectContaining({
        plugin_id: pluginId,
        available: false,
        unavailable_reason: expect.objectContaining({ code: "tier_not_supported" }),
      }),
    ]);

    // Back on pro, the install (kept all along) is offered again.
    llm.script({ text: "Hello again." });
    first = modelSteps();
    await restTurn(user, "Hello again");
    expect(pluginToolsOffered(first).sort()).toEqual([`${slug}__device_tasks`, `${slug}__lookup_weather`]);
    expect(await installs(user)).toEqual([expect.objectContaining({ available: true, unavailable_reason: null })]);
  }, 15_000);

  test("after a tier change the device renews its token and its plugins frame drops a pro-only local plugin", async () => {
    const proSlug = `rec-${short()}`;
    const proId = await publish(localManifest(proSlug, { tiers: ["pro", "power"] }));
    const everyoneSlug = `pad-${short()}`;
    const everyoneId = await publish(localManifest(everyoneSlug));
    const user = await person();
    let tier: Tier = "pro";
    const device = await connectDevice(user, () => tier);
    expect((await p.install(user.token, proId, deviceGrants("note_create"))).status).toBe(201);
    expect((await p.install(user.token, everyoneId, deviceGrants("note_create"))).status).toBe(201);
    const listed = async () =>
      (
        await eventually(
          () =>
            device.frames
              .at(-1)
              ?.local.map((plugin) => plugin.slug)
              .sort(),
          (slugs) => slugs?.length === 2,
        )
      )?.join(",");
    expect(await listed()).toBe([everyoneSlug, proSlug].sort().join(","));

    // The plan drops to free: auth announces the applied change, the gateway tells the device, it renews.
    const frames = device.frames.length;
    tier = "free";
    await announceTierChanged(chat.platform, {
      eventId: crypto.randomUUID(),
      userId: user.userId,
      tier: "free",
      previousTier: "pro",
      reason: "customer.subscription.deleted",
      occurredAt: Date.now(),
    });
    expect(await nextFrame(device, frames)).toEqual({
      type: "plugins",
      local: [expect.objectContaining({ id: everyoneId, slug: everyoneSlug })],
    });
    // Still installed: the plugins service keeps the install for when the plan allows it again.
    expect((await installs(user)).map((each: { plugin_id: string }) => each.plugin_id).sort()).toEqual(
      [proId, everyoneId].sort(),
    );
  }, 15_000);
});
