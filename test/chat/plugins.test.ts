// The chat agent's plugin tools end to end: a real chat instance, the fake OpenAI-compatible model
// scripting tool calls, a real MCP server (the official SDK) as the plugin, a stand-in plugins
// replica answering the lookup queue, and SDK devices over the real WebSocket for device calls and
// the `plugins` frame.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { endpointProblem } from "../../src/chat/agent/plugin-client";
import { pluginToolset } from "../../src/chat/agent/plugins";
import { DeviceClient, type PluginsFrame, type ToolHandler } from "../../src/client";
import type { RateLimiter } from "../../src/shared/rate-limit";
import { captureLogger, eventually } from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";
import { type ChatHarness, promptOf, readSse, startChat, turns } from "./harness";
import {
  localPlugin,
  type PluginsReplica,
  remotePlugin,
  startMcpServer,
  startPluginsReplica,
  type TestMcpServer,
} from "./plugin-servers";

const PSEUDONYM_KEY = "a-test-key-for-plugin-pseudonyms-0123456789";

let h: ChatHarness;
let mcp: TestMcpServer;
let replica: PluginsReplica;
let keyDir: string;
beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), "plugin-key-"));
  writeFileSync(join(keyDir, "pseudonym.key"), `${PSEUDONYM_KEY}\n`);
  h = await startChat({
    env: { CHAT_TOOL_DEADLINE_MS: "2000", PLUGIN_PSEUDONYM_KEY_FILE: join(keyDir, "pseudonym.key") },
  });
  mcp = await startMcpServer();
  h.ctx.defer(() => mcp.close());
  replica = startPluginsReplica(h.platform);
  h.ctx.defer(() => replica.close());
});
afterAll(async () => {
  await h.ctx.close();
  rmSync(keyDir, { recursive: true, force: true });
});

const user = () => `user-${crypto.randomUUID()}`;
const callsOf = (tool: string) => mcp.calls.filter((call) => call.tool === tool).length;
const toolMessages = (index: number) => promptOf(h.llm, index).messages.filter((message) => message.role === "tool");

function recording(handlers: Record<string, ToolHandler>) {
  const calls: Array<{ name: string; args: unknown; origin: string }> = [];
  const tools: Record<string, ToolHandler> = {};
  for (const [name, handler] of Object.entries(handlers)) {
    tools[name] = (args, context) => {
      calls.push({ name, args, origin: context.origin });
      return handler(args, context);
    };
  }
  return { calls, tools };
}

describe("plugin tools", () => {
  test("an installed plugin's tool is offered under its namespace, called, and its result reaches the model and the stored reply", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    h.llm.script(
      { toolCalls: [{ id: "call_w", name: "weather__lookup_weather", args: { city: "Paris" } }] },
      { text: "It is sunny in Paris." },
    );
    const first = turns(h);
    const token = await h.token(userId);
    const response = await h.chatSse(token, { text: "Weather in Paris?" });
    const chatId = response.headers.get("x-chat-id");
    const { chunks } = await readSse(response);

    const offered = promptOf(h.llm, first).tools;
    expect(offered.filter((name) => name.startsWith("weather__")).sort()).toEqual([
      "weather__device_later",
      "weather__device_tasks",
      "weather__lookup_weather",
      "weather__slow",
    ]);
    const request = h.llm.chatRequests().filter((each) => each.stream)[first]!;
    expect(
      request.body.tools?.find((each) => each.function.name === "weather__lookup_weather")?.function,
    ).toMatchObject({
      description: expect.stringContaining("The weather in a city"),
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    });
    expect(mcp.calls.filter((call) => call.args.city === "Paris")).toEqual([
      { tool: "lookup_weather", args: { city: "Paris" } },
    ]);
    expect(toolMessages(first + 1)).toEqual([{ role: "tool", tool_call_id: "call_w", content: "Sunny in Paris" }]);
    expect(chunks.find((chunk) => chunk.type === "tool-output-available")).toMatchObject({
      toolCallId: "call_w",
      output: "Sunny in Paris",
    });
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });

    const stored = (await (await h.get(token, `/conversations/${chatId}`)).json()) as {
      messages: Array<{ role: string; parts: unknown[] }>;
    };
    const reply = stored.messages.find((message) => message.role === "assistant");
    expect(JSON.stringify(reply?.parts)).toContain("Sunny in Paris");
    expect(JSON.stringify(reply?.parts)).toContain("It is sunny in Paris.");
  });

  test("with no plugin installed none is offered, and a forced call is refused without reaching any server", async () => {
    const userId = user();
    const before = mcp.calls.length;
    h.llm.script(
      { toolCalls: [{ id: "call_x", name: "weather__lookup_weather", args: { city: "Rome" } }] },
      { text: "I cannot do that." },
    );
    const first = turns(h);
    const response = await h.chatSse(await h.token(userId), { text: "Weather in Rome?" });
    const { chunks } = await readSse(response);
    expect(promptOf(h.llm, first).tools.filter((name) => name.includes("__"))).toEqual([]);
    expect(mcp.calls.length).toBe(before);
    const [refusal] = toolMessages(first + 1);
    expect(String(refusal?.content)).toContain(
      "tool_refused: weather__lookup_weather is not a tool offered in this conversation",
    );
    expect(chunks.find((chunk) => chunk.type === "tool-input-error")).toMatchObject({
      toolCallId: "call_x",
      errorText: expect.stringContaining("tool_refused"),
    });
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
  });

  test("a tool the server lists but the manifest does not declare is not offered, and a forced call is refused", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    h.llm.script({ toolCalls: [{ id: "call_s", name: "weather__secret", args: {} }] }, { text: "No." });
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "Tell me the secret" });
    expect(promptOf(h.llm, first).tools).toContain("weather__lookup_weather");
    expect(promptOf(h.llm, first).tools).not.toContain("weather__secret");
    expect(callsOf("secret")).toBe(0);
    expect(String(toolMessages(first + 1)[0]?.content)).toContain("tool_refused: weather__secret");
  });

  test("a plugin uninstalled since the last turn loses its tools once pluginsChanged is heard", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    h.llm.script({ text: "ok" });
    let index = turns(h);
    await h.chatJson(await h.token(userId), { text: "hi" });
    expect(promptOf(h.llm, index).tools).toContain("weather__lookup_weather");

    replica.installed.delete(userId);
    const jobs = replica.jobs.length;
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}");
    h.llm.script(
      { toolCalls: [{ id: "call_u", name: "weather__lookup_weather", args: { city: "Oslo" } }] },
      { text: "ok" },
    );
    const before = mcp.calls.length;
    index = turns(h);
    await h.chatJson(await h.token(userId), { text: "Weather in Oslo?" });
    expect(replica.jobs.length).toBeGreaterThan(jobs);
    expect(promptOf(h.llm, index).tools.filter((name) => name.includes("__"))).toEqual([]);
    expect(mcp.calls.length).toBe(before);
    expect(String(toolMessages(index + 1)[0]?.content)).toContain("tool_refused");
  });

  test("an MCP error result reaches the model as a tool error", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    h.llm.script(
      { toolCalls: [{ id: "call_e", name: "weather__lookup_weather", args: { town: "Paris" } }] },
      { text: "Sorry." },
    );
    const first = turns(h);
    const { chunks } = await readSse(await h.chatSse(await h.token(userId), { text: "Weather?" }));
    expect(String(toolMessages(first + 1)[0]?.content)).toContain("plugin_error:");
    expect(chunks.find((chunk) => chunk.type === "tool-output-error")).toMatchObject({ toolCallId: "call_e" });
  });
});

describe("device tools asked for by a plugin", () => {
  test("a granted device tool runs on the user's device and its result flows back through the plugin", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url, { deviceTools: ["task_list"] })] });
    const tasks = { tasks: [{ id: "t1", title: "Pay rent", status: "open" }] };
    const { calls, tools } = recording({ task_list: () => tasks });
    await h.device(userId, tools);
    h.llm.script(
      { toolCalls: [{ id: "call_d", name: "weather__device_tasks", args: { tool: "task_list" } }] },
      { text: "You have one task." },
    );
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "What are my tasks?" });
    expect(calls).toEqual([{ name: "task_list", args: { status: "open" }, origin: "plugin:weather" }]);
    expect(toolMessages(first + 1)).toEqual([
      { role: "tool", tool_call_id: "call_d", content: `device said ${JSON.stringify({ result: tasks })}` },
    ]);
  });

  test("a device tool the user did not grant is refused with permission_denied and the device never sees it", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url, { deviceTools: ["task_list"] })] });
    const { calls, tools } = recording({ task_list: () => ({ tasks: [] }), note_search: () => ({ notes: [] }) });
    await h.device(userId, tools);
    h.llm.script(
      { toolCalls: [{ id: "call_n", name: "weather__device_tasks", args: { tool: "note_search" } }] },
      { text: "Not allowed." },
    );
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "Search my notes" });
    expect(calls).toEqual([]);
    const content = String(toolMessages(first + 1)[0]?.content);
    expect(content).toContain("plugin_error: device refused");
    expect(content).toContain(
      "permission_denied: the user did not grant the weather plugin the device tool note_search",
    );
  });

  test("a plugin granted nothing gets permission_denied for every device tool", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    const { calls, tools } = recording({ task_list: () => ({ tasks: [] }) });
    await h.device(userId, tools);
    h.llm.script(
      { toolCalls: [{ id: "call_g", name: "weather__device_tasks", args: { tool: "task_list" } }] },
      { text: "Not allowed." },
    );
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "tasks?" });
    expect(calls).toEqual([]);
    expect(String(toolMessages(first + 1)[0]?.content)).toContain("permission_denied");
  });

  test("a granted name that is no device tool, or arguments outside the contract, are refused before the device", async () => {
    const userId = user();
    replica.installed.set(userId, {
      plugins: [remotePlugin(mcp.url, { deviceTools: ["task_create", "format_disk"] })],
    });
    const { calls, tools } = recording({ task_create: () => ({ id: "t1" }), format_disk: () => ({}) });
    await h.device(userId, tools);
    h.llm.script(
      {
        toolCalls: [
          { id: "call_a1", name: "weather__device_tasks", args: { tool: "task_create", args: { title: 5 } } },
          { id: "call_a2", name: "weather__device_tasks", args: { tool: "format_disk" } },
        ],
      },
      { text: "Neither worked." },
    );
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "do things" });
    expect(calls).toEqual([]);
    const contents = toolMessages(first + 1).map((message) => String(message.content));
    expect(contents[0]).toContain("invalid_args: title:");
    expect(contents[1]).toContain("unknown_tool: format_disk is not a device tool");
  });

  test("outside the plugin's own tool calls even a granted device tool is refused", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url, { deviceTools: ["task_list"] })] });
    const { calls, tools } = recording({ task_list: () => ({ tasks: [] }) });
    await h.device(userId, tools);
    const before = mcp.late.length;
    h.llm.script({ toolCalls: [{ id: "call_l", name: "weather__device_later", args: {} }] }, async () => {
      // The turn (and its MCP connection) stays open until the server's late request was answered.
      await eventually(
        () => mcp.late.length,
        (count) => count > before,
      );
      return { text: "done" };
    });
    await h.chatJson(await h.token(userId), { text: "later" });
    expect(mcp.late.slice(before)).toEqual([
      expect.stringContaining(
        "permission_denied: device tools are only available during one of the plugin's tool calls",
      ),
    ]);
    expect(calls).toEqual([]);
  });
});

describe("limits", () => {
  test("past the plugin's calls per minute the call is a tool error and the server is not called", async () => {
    const userId = user();
    replica.installed.set(userId, {
      plugins: [remotePlugin(mcp.url, { limits: { callsPerMinute: 2, timeoutMs: 5000 } })],
    });
    const cities = ["Lima", "Quito", "Bogota"];
    h.llm.script(
      {
        toolCalls: cities.map((city, index) => ({
          id: `call_r${index}`,
          name: "weather__lookup_weather",
          args: { city },
        })),
      },
      { text: "Two of three." },
    );
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "Weather in three cities" });
    expect(mcp.calls.filter((call) => cities.includes(String(call.args.city))).length).toBe(2);
    const contents = toolMessages(first + 1).map((message) => String(message.content));
    expect(contents.filter((content) => content.startsWith("Sunny in")).length).toBe(2);
    expect(
      contents.filter((content) => content.includes("rate_limited: the weather plugin allows 2 calls a minute")),
    ).toHaveLength(1);

    // The budget is the user's across turns: the next turn's call is refused too.
    h.llm.script(
      { toolCalls: [{ id: "call_r3", name: "weather__lookup_weather", args: { city: "Cusco" } }] },
      { text: "." },
    );
    const next = turns(h);
    await h.chatJson(await h.token(userId), { text: "And Cusco?" });
    expect(mcp.calls.some((call) => call.args.city === "Cusco")).toBe(false);
    expect(String(toolMessages(next + 1)[0]?.content)).toContain("rate_limited");
  });

  test("another user's calls do not count against the limit", async () => {
    const plugin = remotePlugin(mcp.url, { limits: { callsPerMinute: 1, timeoutMs: 5000 } });
    for (const [index, userId] of [user(), user()].entries()) {
      replica.installed.set(userId, { plugins: [plugin] });
      h.llm.script(
        { toolCalls: [{ id: `call_o${index}`, name: "weather__lookup_weather", args: { city: `Town${index}` } }] },
        { text: "." },
      );
      const first = turns(h);
      await h.chatJson(await h.token(userId), { text: "weather" });
      expect(String(toolMessages(first + 1)[0]?.content)).toBe(`Sunny in Town${index}`);
    }
  });

  test("a call past the plugin's timeout is cancelled and reported to the model, within the limit", async () => {
    const userId = user();
    replica.installed.set(userId, {
      plugins: [remotePlugin(mcp.url, { limits: { callsPerMinute: 60, timeoutMs: 400 } })],
    });
    h.llm.script({ toolCalls: [{ id: "call_t", name: "weather__slow", args: {} }] }, { text: "It timed out." });
    const first = turns(h);
    const cancelledBefore = mcp.cancelled.length;
    const started = performance.now();
    const response = await h.chatJson(await h.token(userId), { text: "slow please" });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(200);
    expect(String(toolMessages(first + 1)[0]?.content)).toContain(
      "timeout: the weather plugin did not answer within 400 ms",
    );
    expect(elapsed).toBeLessThan(400 + 3000);
    expect(
      await eventually(
        () => mcp.cancelled.length,
        (count) => count > cancelledBefore,
      ),
    ).toBeGreaterThan(cancelledBefore);
  });
});

describe("what a plugin's server learns", () => {
  test("no token and no user id: only a pseudonym, stable per plugin and different across plugins", async () => {
    const userId = user();
    const token = await h.token(userId);
    const first = remotePlugin(mcp.url);
    const second = remotePlugin(mcp.url, { slug: "news" });
    replica.installed.set(userId, { plugins: [first, second] });
    const seen = mcp.headers.length;
    h.llm.script(
      {
        toolCalls: [
          { id: "call_p1", name: "weather__lookup_weather", args: { city: "Bern" } },
          { id: "call_p2", name: "news__lookup_weather", args: { city: "Basel" } },
        ],
      },
      { text: "." },
    );
    await h.chatJson(token, { text: "weather twice" });
    const headers = mcp.headers.slice(seen);
    expect(headers.length).toBeGreaterThan(0);
    const everything = JSON.stringify(headers);
    expect(everything).not.toContain(userId);
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.split(".")[1]!);
    for (const each of headers) {
      expect(each.authorization).toBeUndefined();
      expect(each.cookie).toBeUndefined();
    }
    const pseudonym = (pluginId: string) =>
      createHmac("sha256", PSEUDONYM_KEY).update(pluginId).update("\0").update(userId).digest("base64url");
    const sent = new Set(headers.map((each) => each["x-adiuva-pseudonym"]));
    expect(sent).toEqual(new Set([pseudonym(first.pluginId), pseudonym(second.pluginId)]));
  });

  test("an endpoint redirecting to another origin is not followed: the plugin is left out", async () => {
    const elsewhere: string[] = [];
    const other = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(request) {
        elsewhere.push(request.url);
        return new Response("{}", { status: 404 });
      },
    });
    const redirecting = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${other.port}/mcp` } }),
    });
    try {
      const userId = user();
      replica.installed.set(userId, {
        plugins: [remotePlugin(`http://127.0.0.1:${redirecting.port}/mcp`, { slug: "moved" })],
      });
      h.llm.script({ text: "ok" });
      const first = turns(h);
      await h.chatJson(await h.token(userId), { text: "hi" });
      expect(promptOf(h.llm, first).tools.filter((name) => name.startsWith("moved__"))).toEqual([]);
      expect(elsewhere).toEqual([]);
    } finally {
      await other.stop(true);
      await redirecting.stop(true);
    }
  });

  test("in production a name resolving inside the network is refused before connecting; nothing reaches it", async () => {
    const asked: string[] = [];
    const answers: Record<string, string[]> = {
      "rebound.plugins.example": ["93.184.216.34", "127.0.0.1"],
      "metadata.plugins.example": ["::ffff:169.254.169.254"],
      "public.plugins.invalid": ["93.184.216.34"],
    };
    const resolveHost = async (host: string) => {
      asked.push(host);
      return answers[host] ?? [];
    };
    const opened = async (endpoint: string, strict = true) => {
      const { logger, lines } = captureLogger();
      const toolset = await pluginToolset({
        plugins: {
          lookup: {
            installed: async () => ({
              remote: [remotePlugin(endpoint, { limits: { callsPerMinute: 60, timeoutMs: 1000 } })],
              local: [],
            }),
            onChanged: () => () => {},
            start: async () => {},
            close: async () => {},
          },
          limiter: h.parts.engine.plugins?.limiter as RateLimiter,
          keys: h.platform.keys,
          strictEndpoints: strict,
          resolveHost,
        },
        userId: user(),
        tier: "free",
        rpc: h.parts.engine.rpc,
        device: Promise.resolve(undefined),
        deviceDeadlineMs: 1000,
        logger,
        signal: new AbortController().signal,
      });
      await toolset.close();
      const reason = lines.find(
        (line) => line.msg === "plugin server not reached; the turn goes on without its tools",
      )?.err;
      return { tools: Object.keys(toolset.tools), reason: reason as string | undefined };
    };

    const rebound = await opened("https://rebound.plugins.example/mcp");
    expect(rebound).toEqual({
      tools: [],
      reason: "endpoint refused: rebound.plugins.example resolves to a private or loopback address (127.0.0.1)",
    });
    expect((await opened("https://metadata.plugins.example/mcp")).reason).toContain(
      "resolves to a private or loopback address (::ffff:169.254.169.254)",
    );
    expect((await opened("https://gone.plugins.example/mcp")).reason).toContain(
      "endpoint refused: gone.plugins.example did not resolve",
    );
    expect(asked).toEqual(["rebound.plugins.example", "metadata.plugins.example", "gone.plugins.example"]);
    // The literal check stays, without resolving anything.
    expect((await opened("https://10.0.0.8/mcp")).reason).toBe("endpoint refused: a private or loopback address");
    expect(asked).toHaveLength(3);
    // A public answer passes the check: the client goes on to connect (and fails on a name that is nowhere).
    const onward = await opened("https://public.plugins.invalid/mcp");
    expect(onward.tools).toEqual([]);
    expect(onward.reason).toBeDefined();
    expect(onward.reason).not.toContain("endpoint refused");
    expect(asked.at(-1)).toBe("public.plugins.invalid");
    // Outside production the test server on 127.0.0.1 is connected, and nothing is resolved.
    expect((await opened(mcp.url, false)).tools).toContain("weather__lookup_weather");
    expect(asked).toHaveLength(4);
  });

  test("production connects only https endpoints on public addresses", () => {
    expect(endpointProblem("https://plugins.example.com/mcp", true)).toBeUndefined();
    expect(endpointProblem("http://plugins.example.com/mcp", true)).toBe("plain http");
    for (const host of [
      "127.0.0.1",
      "10.0.0.5",
      "192.168.1.2",
      "169.254.169.254",
      "100.64.1.1",
      "localhost",
      "db.internal",
      "printer.local",
      "[::1]",
      "[fd00::1]",
      "[::ffff:169.254.169.254]",
      "[::ffff:7f00:1]",
    ]) {
      expect(endpointProblem(`https://${host}/mcp`, true)).toBe("a private or loopback address");
    }
    expect(endpointProblem("https://user:pass@plugins.example.com/mcp", true)).toBe("credentials in the URL");
    expect(endpointProblem("http://127.0.0.1:4000/mcp", false)).toBeUndefined();
    expect(endpointProblem("ftp://plugins.example.com/mcp", false)).toBe("scheme ftp:");
  });
});

describe("the user's tier", () => {
  /** One turn over REST with a token of the tier; the plugin tools the model was offered. */
  async function offeredOn(userId: string, tier: Tier) {
    h.llm.script({ text: "ok" });
    const index = turns(h);
    const response = await h.chatJson(await h.token(userId, tier), { text: "hello" });
    expect(response.status).toBe(200);
    return promptOf(h.llm, index).tools.filter((name) => name.includes("__"));
  }
  const jobsOf = (userId: string) => replica.jobs.filter((job) => job.userId === userId);

  test("each turn's lookup carries its token's tier, and an answer is kept per tier: a plan change never gets the old one", async () => {
    const userId = user();
    const proOnly = remotePlugin(mcp.url);
    replica.installed.set(userId, { plugins: [proOnly] });
    replica.tiers.set(proOnly.pluginId, ["pro", "power", "team"]);

    expect(await offeredOn(userId, "pro")).toContain("weather__lookup_weather");
    expect(jobsOf(userId).map((job) => job.tier)).toEqual(["pro"]);
    // Within the 60 s the pro answer is kept, a free turn asks for its own and is not offered it.
    expect(await offeredOn(userId, "free")).toEqual([]);
    expect(jobsOf(userId).map((job) => job.tier)).toEqual(["pro", "free"]);
    // Each tier's answer is kept: no lookup for either now.
    expect(await offeredOn(userId, "pro")).toContain("weather__lookup_weather");
    expect(await offeredOn(userId, "free")).toEqual([]);
    expect(jobsOf(userId)).toHaveLength(2);
    // A change forgets the user's answers for every tier.
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}");
    await eventually(
      async () => {
        await offeredOn(userId, "free");
        return jobsOf(userId).length;
      },
      (count) => count === 3,
    );
    expect(jobsOf(userId).at(-1)?.tier).toBe("free");
  });

  test("a device's turn carries the tier of its session", async () => {
    const userId = user();
    const proOnly = remotePlugin(mcp.url);
    replica.installed.set(userId, { plugins: [proOnly] });
    replica.tiers.set(proOnly.pluginId, ["pro"]);
    for (const tier of ["free", "pro"] as const) {
      const device = await h.device(userId, {}, { tier, deviceId: `device-${tier}` });
      h.llm.script({ text: "ok" });
      const index = turns(h);
      const stream = device.chat({ text: "hello" });
      for await (const _ of stream) {
        // drained
      }
      await stream.done;
      const offered = promptOf(h.llm, index).tools.includes("weather__lookup_weather");
      expect({ tier, offered }).toEqual({ tier, offered: tier === "pro" });
      await device.close();
    }
    expect(new Set(jobsOf(userId).map((job) => job.tier))).toEqual(new Set(["free", "pro"]));
  });
});

describe("the plugins frame", () => {
  /** An SDK device listening for `plugins` frames from before it connects. */
  async function listeningDevice(userId: string, tier: Tier = "free") {
    const frames: PluginsFrame[] = [];
    const client = new DeviceClient({
      url: h.first.wsUrl,
      deviceId: `device-${crypto.randomUUID().slice(0, 8)}`,
      token: () => h.token(userId, tier),
      backoff: { initialMs: 50, maxMs: 400 },
    });
    h.ctx.defer(() => client.close());
    client.on("plugins", (frame) => frames.push(frame));
    await client.connect();
    return { client, frames };
  }

  test("a device gets the user's local plugins after welcome, and again when they change", async () => {
    const userId = user();
    const clipboard = localPlugin();
    replica.installed.set(userId, { local: [clipboard], plugins: [remotePlugin(mcp.url)] });
    const { frames } = await listeningDevice(userId);
    await eventually(
      () => frames.length,
      (count) => count === 1,
    );
    expect(frames).toEqual([
      {
        type: "plugins",
        local: [
          {
            id: clipboard.pluginId,
            slug: "clipboard",
            version: "0.3.0",
            package: clipboard.package,
            tools: [{ name: "clipboard_read", description: "Reads the clipboard" }],
            grants: { device_tools: ["note_create"], origins: [], data: [] },
          },
        ],
      },
    ]);

    const upgraded = { ...clipboard, version: "0.4.0" };
    replica.installed.set(userId, { local: [upgraded] });
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}");
    await eventually(
      () => frames.length,
      (count) => count === 2,
    );
    expect(frames[1]?.local.map((plugin) => plugin.version)).toEqual(["0.4.0"]);

    replica.installed.set(userId, {});
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}");
    await eventually(
      () => frames.length,
      (count) => count === 3,
    );
    expect(frames[2]).toEqual({ type: "plugins", local: [] });
  });

  test("another user's device never gets it", async () => {
    const owner = user();
    const stranger = user();
    replica.installed.set(owner, { local: [localPlugin()] });
    const mine = await listeningDevice(owner);
    const theirs = await listeningDevice(stranger);
    await eventually(
      () => mine.frames.length + theirs.frames.length,
      (count) => count === 2,
    );
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(owner), "{}");
    await eventually(
      () => mine.frames.length,
      (count) => count === 2,
    );
    // The stranger's own (empty) list came after its welcome; nothing of the owner's ever did.
    expect(theirs.frames).toEqual([{ type: "plugins", local: [] }]);
    expect(mine.frames.every((frame) => frame.local.length === 1)).toBe(true);
  });

  test("the list is looked up for each socket's own tier: a plugin not for it is not announced", async () => {
    const userId = user();
    const everyone = localPlugin({ slug: "clipboard" });
    const teamOnly = localPlugin({ slug: "screens" });
    replica.installed.set(userId, { local: [everyone, teamOnly] });
    replica.tiers.set(teamOnly.pluginId, ["team"]);
    const free = await listeningDevice(userId, "free");
    const team = await listeningDevice(userId, "team");
    await eventually(
      () => free.frames.length + team.frames.length,
      (count) => count === 2,
    );
    expect(free.frames.map((frame) => frame.local.map((plugin) => plugin.slug))).toEqual([["clipboard"]]);
    expect(team.frames.map((frame) => frame.local.map((plugin) => plugin.slug))).toEqual([["clipboard", "screens"]]);
    const tiers = replica.jobs.filter((job) => job.userId === userId).map((job) => job.tier);
    expect(tiers.sort()).toEqual(["free", "team"]);

    // A change reaches each socket with its own tier's list.
    replica.installed.set(userId, { local: [teamOnly] });
    await h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}");
    await eventually(
      () => free.frames.length + team.frames.length,
      (count) => count === 4,
    );
    expect(free.frames.at(-1)).toEqual({ type: "plugins", local: [] });
    expect(team.frames.at(-1)?.local.map((plugin) => plugin.slug)).toEqual(["screens"]);
  });

  test("after a tier change the device renews its token and gets the list for its new tier", async () => {
    const userId = user();
    const everyone = localPlugin({ slug: "clipboard" });
    const proOnly = localPlugin({ slug: "recorder" });
    replica.installed.set(userId, { local: [everyone, proOnly] });
    replica.tiers.set(proOnly.pluginId, ["pro", "power"]);
    let tier: Tier = "pro";
    const frames: PluginsFrame[] = [];
    const client = new DeviceClient({
      url: h.first.wsUrl,
      deviceId: `device-${crypto.randomUUID().slice(0, 8)}`,
      token: () => h.token(userId, tier),
      backoff: { initialMs: 50, maxMs: 400 },
    });
    h.ctx.defer(() => client.close());
    client.on("plugins", (frame) => frames.push(frame));
    await client.connect();
    const slugs = async (count: number) =>
      (
        await eventually(
          () => frames,
          (all) => all.length >= count,
        )
      )[count - 1]?.local.map((plugin) => plugin.slug);
    expect(await slugs(1)).toEqual(["clipboard", "recorder"]);

    // What auth announces after a tier change: the device is told to refresh, and renews.
    tier = "free";
    await h.platform.bus.publish(h.platform.keys.tierChanged(userId), JSON.stringify({ tier }));
    expect(await slugs(2)).toEqual(["clipboard"]);

    tier = "power";
    await h.platform.bus.publish(h.platform.keys.tierChanged(userId), JSON.stringify({ tier }));
    expect(await slugs(3)).toEqual(["clipboard", "recorder"]);
    expect(replica.jobs.filter((job) => job.userId === userId).map((job) => job.tier)).toEqual([
      "pro",
      "free",
      "power",
    ]);
  });

  test("a socket without a valid token gets no plugins frame", async () => {
    const frames: Array<{ type: string }> = [];
    const ws = new WebSocket(h.first.wsUrl);
    ws.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
    const closed = new Promise<number>((resolve) => {
      ws.onclose = (event) => resolve(event.code);
    });
    await new Promise((resolve) => {
      ws.onopen = resolve;
    });
    ws.send(JSON.stringify({ type: "hello", token: "not-a-token", device_id: "d1", tools: [], protocol: 1 }));
    expect(await closed).toBe(4401);
    expect(frames.filter((frame) => frame.type === "plugins")).toEqual([]);
  });

  test("a reply the plugins service garbled sends no frame and gives the turn no plugin tools", async () => {
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)], local: [localPlugin()] });
    replica.raw.set(userId, JSON.stringify({ requestId: "$REQUEST_ID", plugins: [{ slug: 42 }] }));
    const { frames } = await listeningDevice(userId);
    const jobs = () => replica.jobs.filter((job) => job.userId === userId).length;
    await eventually(jobs, (count) => count >= 1);
    h.llm.script({ text: "ok" });
    const first = turns(h);
    await h.chatJson(await h.token(userId), { text: "hi" });
    expect(promptOf(h.llm, first).tools.filter((name) => name.includes("__"))).toEqual([]);
    expect(frames).toEqual([]);
    replica.raw.delete(userId);
  });

  test("a burst of changes makes at most one lookup more than the one running, and the device ends with the latest list", async () => {
    const userId = user();
    replica.installed.set(userId, { local: [localPlugin({ version: "1.0.0" })] });
    const { frames } = await listeningDevice(userId);
    await eventually(
      () => frames.length,
      (count) => count === 1,
    );
    const jobsBefore = replica.jobs.filter((job) => job.userId === userId).length;
    replica.installed.set(userId, { local: [localPlugin({ version: "2.0.0" })] });
    await Promise.all(
      Array.from({ length: 20 }, () => h.platform.bus.publish(h.platform.keys.pluginsChanged(userId), "{}")),
    );
    await eventually(
      () => frames.at(-1)?.local[0]?.version,
      (version) => version === "2.0.0",
    );
    const lookups = () => replica.jobs.filter((job) => job.userId === userId).length - jobsBefore;
    // Let any lookup still owed by the burst finish before counting.
    await eventually(lookups, (count) => count >= 1);
    expect(lookups()).toBeLessThanOrEqual(2);
    expect(frames.length).toBeLessThanOrEqual(3);
    expect(frames.at(-1)?.local[0]?.version).toBe("2.0.0");
  });
});
