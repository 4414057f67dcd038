// The device SDK in every runtime the app uses, against real chat instances (PostgreSQL, Redis,
// the device gateway; the model is the fake OpenAI-compatible server, scripted to call the device's
// `task_list`). One scenario file (runtime/scenarios.ts) runs in Bun, bundled with
// `bun build --target=node` in Node 20 and Node 22 (subprocesses running a small .mjs script), and
// as the browser bundle in headless Chromium (a page served from 127.0.0.1 posting its results
// back) — each with the runtime's built-in WebSocket and, in Node, with the `ws` package injected.
// Each run gets its own chat instance behind a TCP proxy whose port survives a restart, and its own
// control endpoints (tokens, tier change, server down/up, device RPC calls) for the scenarios. For
// the agent run scenario, a control endpoint starts an agent service instance (its worker on the same
// PostgreSQL and Redis, the model the same fake server answering with test/agent's deterministic
// brain) and triggers a run on the scenario's device over the files it serves; the instance is
// stopped once the run is reported, so the restart scenario still finds no agent replica. Each run
// also gets a scripted server playing the resume scenario (a turn whose socket closes mid-stream).
// The plugins service runs beside the chat instances on the same PostgreSQL and Redis
// (support/plugins.ts): two local plugins are published and approved once; each run's user has the
// first installed before its device connects, and control endpoints install and uninstall them while
// it is connected, so the `plugins` events the scenario collects come from the real lookup and
// `pluginsChanged`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import WebSocketPackage from "ws";
import { createAgentService } from "../../src/agent";
import { idempotencyKey } from "../../src/agent/runner/write";
import type { ChatServiceModule } from "../../src/chat";
import { createChatService } from "../../src/chat";
import type { WebSocketConstructor } from "../../src/client";
import * as sdk from "../../src/client";
import { messageText } from "../../src/shared/llm/wire";
import { createTestContext, type FakeOpenAi, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import { brainReply } from "../agent/support/fake-llm";
import { api } from "../agent/support/http";
import { LAST_SEQ, OTHER_TURN } from "./runtime/resume";
import { AGENT_DIR, runScenarios, type ScenarioResults } from "./runtime/scenarios";
import { type LocalPlugins, type PublishedLocalPlugin, startLocalPlugins } from "./support/plugins";
import { PortProxy } from "./support/proxy";
import { resumeScript, ScriptedServer } from "./support/scripted-server";

const root = join(import.meta.dir, "../..");
const CHROMIUM = "/usr/bin/chromium";
let ctx: TestContext;
let llm: FakeOpenAi;
let out: string;
let localPlugins: LocalPlugins;
/** The local plugins the runs install: `first` before the device connects, `second` while it is connected. */
let published: Record<"first" | "second", PublishedLocalPlugin>;

beforeAll(async () => {
  ctx = await createTestContext();
  llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  // Agent runs' classification and extraction get the brain's answers; the chat's memory, no facts.
  llm.onStructured((request) =>
    ["classification", "extraction"].includes(request.response_format?.json_schema?.name ?? "")
      ? brainReply(request)
      : { json: { facts: [] } },
  );
  // The model asks for the device's tasks when told "sdk-tool", then reports what the tool said.
  llm.onChat((request) => {
    const last = request.messages.at(-1);
    if (last?.role === "tool") return { text: `tool said ${messageText(last)}` };
    if (messageText(last).includes("sdk-tool")) return { toolCalls: [{ name: "task_list", args: { status: "open" } }] };
    return { text: "ok" };
  });
  localPlugins = await startLocalPlugins(ctx);
  // Listed by slug: the first plugin comes first in every list.
  const suffix = crypto.randomUUID().slice(0, 8);
  published = {
    first: await localPlugins.publishLocal(`sdk-a-${suffix}`, "clipboard_read"),
    second: await localPlugins.publishLocal(`sdk-b-${suffix}`, "screen_capture"),
  };
  out = mkdtempSync(join(tmpdir(), "sdk-runtimes-"));
  await Promise.all([
    bundle("src/client/index.ts", "node", "sdk-node.mjs"),
    bundle("test/client/runtime/scenarios.ts", "node", "scenarios-node.mjs"),
    bundle("src/client/index.ts", "browser", "sdk-browser.js"),
    bundle("test/client/runtime/scenarios.ts", "browser", "scenarios-browser.js"),
  ]);
  writeFileSync(join(out, "node-main.mjs"), NODE_MAIN);
});
afterAll(async () => {
  await ctx.close();
  rmSync(out, { recursive: true, force: true });
});

async function bundle(entry: string, target: "node" | "browser", file: string): Promise<void> {
  const build = Bun.spawn(
    ["bun", "build", entry, `--target=${target}`, "--format=esm", `--outfile=${join(out, file)}`],
    { cwd: root, stdout: "ignore", stderr: "pipe" },
  );
  if ((await build.exited) !== 0) throw new Error(`bun build ${entry}: ${await new Response(build.stderr).text()}`);
}

const NODE_MAIN = `// Runs the SDK scenarios in Node and prints their results as one JSON line.
import * as sdk from "./sdk-node.mjs";
import { runScenarios } from "./scenarios-node.mjs";

const uncaught = [];
process.on("uncaughtException", (error) => uncaught.push(String(error?.stack ?? error)));
process.on("unhandledRejection", (error) => uncaught.push(String(error?.stack ?? error)));
const [wsUrl, control, label, resumeWsUrl, wsModule] = process.argv.slice(2);
try {
  const WebSocketImpl = wsModule ? (await import(wsModule)).default : undefined;
  const results = await runScenarios(sdk, { wsUrl, control, label, resumeWsUrl }, WebSocketImpl);
  console.log(JSON.stringify({ ...results, uncaught, hasGlobalWebSocket: typeof WebSocket === "function" }));
} catch (error) {
  console.log(JSON.stringify({ fatal: String(error?.stack ?? error), uncaught }));
}
process.exit(0);
`;

/** One run's server side: a chat instance behind a proxy, and control endpoints for its scenarios. */
async function openSlot(label: string, page?: { sdk: string; scenarios: string }) {
  const userId = `user-${label}-${crypto.randomUUID()}`;
  // Installed before the device connects: the list after its welcome holds it.
  await localPlugins.install(userId, published.first);
  // A plugin lookup the plugins service answers late (a loaded machine) would leave the instance no
  // longer waiting for it, and the welcome without its `plugins` frame: the deadline is generous.
  const start = () =>
    ctx.start([(platform) => createChatService(platform)], {
      service: "chat",
      env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", DEVICE_HEARTBEAT_S: "0.5", CHAT_PLUGIN_LOOKUP_MS: "5000" },
    });
  let instance = await start();
  const proxy = new PortProxy();
  proxy.listen(Number(new URL(instance.url).port));
  const results = Promise.withResolvers<ScenarioResults>();
  let agent: Awaited<ReturnType<TestContext["start"]>> | undefined;
  const agentApi = async () => {
    agent ??= await ctx.start([(platform) => createAgentService(platform)], {
      service: "agent",
      env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", AGENT_DEVICE_CALL_MS: "5000" },
    });
    return api(agent.url, await ctx.token(userId, "power"));
  };
  const json = (value: unknown) => Response.json(value ?? null);
  const pluginNamed = (name: unknown) => {
    if (name !== "first" && name !== "second") throw new Error(`no plugin ${String(name)}`);
    return published[name];
  };
  const routes: Record<string, (body: Record<string, unknown>) => Promise<Response>> = {
    "/token": async (body) => json({ token: await ctx.token(userId, body.tier === "pro" ? "pro" : "free") }),
    "/tier": async () => {
      const { bus, keys } = instance.platform;
      await bus.publish(keys.tierChanged(userId), JSON.stringify({ userId, tier: "pro" }));
      return json({});
    },
    "/down": async () => {
      await instance.stop();
      proxy.stop();
      return json({});
    },
    "/up": async () => {
      instance = await start();
      proxy.listen(Number(new URL(instance.url).port));
      return json({});
    },
    "/install": async (body) => {
      await localPlugins.install(userId, pluginNamed(body.plugin));
      return json({});
    },
    "/uninstall": async (body) => {
      await localPlugins.uninstall(userId, pluginNamed(body.plugin));
      return json({});
    },
    "/call": async (body) => {
      const { gateway } = instance.modules[0] as ChatServiceModule;
      return json(await gateway.rpc.call({ userId, name: String(body.name), args: body.args }));
    },
    "/agent-run": async (body) => {
      const call = await agentApi();
      const config = await call("POST", "/configs", { type: "filesystem", config: { path: body.path } });
      if (config.status !== 201) throw new Error(`POST /configs: ${config.status} ${JSON.stringify(config.body)}`);
      const run = await call("POST", "/trigger", { config_id: config.body.id, device_id: body.device_id });
      if (run.status !== 202) throw new Error(`POST /trigger: ${run.status} ${JSON.stringify(run.body)}`);
      return json(run.body);
    },
    "/agent-done": async (body) => {
      if (!agent) return json(null);
      const { body: run } = await (await agentApi())("GET", `/runs/${encodeURIComponent(String(body.run_id))}`);
      await agent.stop();
      agent = undefined;
      return json({ status: run?.status, device_id: run?.device_id, progress: run?.progress, counts: run?.counts });
    },
    "/results": async (body) => {
      results.resolve(body as unknown as ScenarioResults);
      return json({});
    },
  };
  const control = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const { pathname } = new URL(request.url);
      const route = routes[pathname];
      if (route && request.method === "POST") {
        try {
          return await route((await request.json().catch(() => ({}))) as Record<string, unknown>);
        } catch (error) {
          return new Response(String(error), { status: 500 });
        }
      }
      if (!page) return new Response("not found", { status: 404 });
      if (pathname === "/sdk.js" || pathname === "/scenarios.js") {
        const file = Bun.file(pathname === "/sdk.js" ? page.sdk : page.scenarios);
        return new Response(file, { headers: { "content-type": "text/javascript" } });
      }
      return new Response(pageHtml(label), { headers: { "content-type": "text/html" } });
    },
  });
  const scripted = new ScriptedServer(resumeScript);
  ctx.defer(async () => {
    proxy.stop();
    scripted.stop();
    await control.stop(true);
  });
  return {
    config: {
      wsUrl: `ws://127.0.0.1:${proxy.port}/api/v1/ws/device`,
      control: `http://127.0.0.1:${control.port}`,
      label,
      resumeWsUrl: scripted.url,
    },
    results: results.promise,
  };
}

const pageHtml = (label: string) => `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
  const uncaught = [];
  addEventListener("error", (event) => uncaught.push(String(event.message)));
  addEventListener("unhandledrejection", (event) => uncaught.push(String(event.reason?.stack ?? event.reason)));
  const post = (body) => fetch("/results", { method: "POST", body: JSON.stringify(body) });
  try {
    const sdk = await import("/sdk.js");
    const { runScenarios } = await import("/scenarios.js");
    const query = new URLSearchParams(location.search);
    const results = await runScenarios(sdk, { wsUrl: query.get("ws"), control: location.origin, label: ${JSON.stringify(label)}, resumeWsUrl: query.get("resume") });
    await post({ ...results, uncaught });
  } catch (error) {
    await post({ uncaught: [...uncaught, String(error?.stack ?? error)] });
  }
</script>`;

/** The agent run's writes: the entities of AGENT_FILES, each once, with the keys the runner derives. */
const key = (file: string, kind: Parameters<typeof idempotencyKey>[2], identity: string) =>
  idempotencyKey(`dir:${AGENT_DIR}`, `${AGENT_DIR}/${file}`, kind, identity);
const GARDEN = key("plan.md", "projects", "garden");
const AGENT_WRITES = [
  { tool: "note_create", key: key("ideas.md", "notes", "compost"), title: "compost", project_id: null },
  { tool: "project_create", key: GARDEN, title: "garden", project_id: null },
  // Linked to the id the device answered project_create with.
  {
    tool: "task_create",
    key: key("plan.md", "tasks", "water the roses"),
    title: "water the roses",
    project_id: `id-${GARDEN}`,
  },
].sort((a, b) => `${a.tool} ${a.key}`.localeCompare(`${b.tool} ${b.key}`));

/** What every runtime must show; `label` names the runtime in the tool result. */
function expected(label: string) {
  const tasks = { tasks: [{ id: "t1", title: `from ${label}`, status: "open" }] };
  return {
    welcome: { protocol: sdk.DEVICE_PROTOCOL, status: "open" },
    plugins: {
      atWelcome: { type: "plugins" as const, local: [published.first.entry] },
      afterInstall: { type: "plugins" as const, local: [published.first.entry, published.second.entry] },
      afterUninstall: { type: "plugins" as const, local: [published.second.entry] },
      events: 3,
    },
    chatTool: { calls: [{ args: { status: "open" }, origin: "chat" }], finish: "stop", output: tasks },
    agentRun: {
      finished: "succeeded",
      server: {
        status: "succeeded",
        device_id: `sdk-${label}`,
        progress: expect.objectContaining({ total: 3, done: 3, failed: 0 }),
        counts: { tasks: 1, projects: 1, notes: 1, events: 0 },
      },
      events: ["started", "finished"],
      origins: ["agent:<run>"],
      reads: { fs_list_dir: 1, fs_read_file: 3 },
      writes: AGENT_WRITES,
    },
    renewal: { staleRequests: [false, true], afterwards: "chat_done" },
    restart: {
      pendingJourney: "connection_closed",
      goingAway: { code: 1001, reason: expect.any(String), willReconnect: true },
      refused: { code: 1006, willReconnect: true },
      statusWhileDown: "connecting",
      chatWhileDown: "DeviceRequestError:not_connected",
      journeyWhileDown: "not_connected",
      rejectedWithin1s: true,
      newConnection: true,
      call: { tasks: [{ id: "t1", title: `from ${label}`, status: "open" }] },
    },
    closed: { code: "not_connected", within1s: true },
    resume: {
      seqs: Array.from({ length: LAST_SEQ + 1 }, (_, seq) => seq),
      text: Array.from({ length: LAST_SEQ + 1 }, (_, seq) => `w${seq} `).join(""),
      finish: "stop",
      lastSeq: LAST_SEQ,
      chatId: "chat-1",
      // The scripted close mid-turn, then close() at the end.
      reconnects: [true, false],
      // First welcome: nothing running; second: the followed turn is left out.
      activeTurns: [[], [OTHER_TURN]],
      otherTurn: "not_resumable",
      afterClose: "connection_closed",
    },
    uncaught: [],
  };
}

async function runNode(binary: string, label: string, options: { flags?: string[]; ws?: boolean }) {
  const slot = await openSlot(label);
  // The package's own ESM entry: Bun would resolve "ws" to its built-in stand-in.
  const wsModule = options.ws ? pathToFileURL(join(root, "node_modules/ws/wrapper.mjs")).href : "";
  const child = Bun.spawn(
    [
      binary,
      ...(options.flags ?? []),
      join(out, "node-main.mjs"),
      slot.config.wsUrl,
      slot.config.control,
      label,
      slot.config.resumeWsUrl,
      wsModule,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  if (code !== 0 || !last.startsWith("{")) throw new Error(`${label} exited ${code}: ${stdout}${stderr}`);
  const { hasGlobalWebSocket, ...results } = JSON.parse(last);
  return { results, hasGlobalWebSocket: hasGlobalWebSocket as boolean };
}

/** Node 22 through npm's `node` package (NODE22 names a binary instead); undefined when unavailable. */
function findNode22(): string | undefined {
  if (process.env.NODE22) return process.env.NODE22;
  const found = Bun.spawnSync(["npx", "-y", "node@22", "-p", "process.execPath"], { timeout: 60_000 });
  const path = found.stdout.toString().trim();
  return found.exitCode === 0 && existsSync(path) ? path : undefined;
}

const node20 = Bun.which("node");
const node20Version = node20 ? Bun.spawnSync([node20, "--version"]).stdout.toString().trim() : "";
const node22 = findNode22();
const hasChromium = existsSync(CHROMIUM);
if (!node20Version.startsWith("v20."))
  console.log(`skipped Node 20 runs: node on PATH is ${node20Version || "missing"}`);
if (!node22) console.log("skipped Node 22 runs: npx -y node@22 is unavailable (set NODE22 to a Node 22 binary)");
if (!hasChromium) console.log(`skipped the Chromium run: ${CHROMIUM} is not installed (apt-get install chromium)`);

describe("the SDK in every runtime the app uses", () => {
  test("Bun, built-in WebSocket", async () => {
    const slot = await openSlot("bun");
    expect({ ...(await runScenarios(sdk, slot.config)), uncaught: [] }).toEqual(expected("bun"));
  }, 30_000);

  test("Bun, the ws package injected", async () => {
    const slot = await openSlot("bun-ws");
    const results = await runScenarios(sdk, slot.config, WebSocketPackage as unknown as WebSocketConstructor);
    expect({ ...results, uncaught: [] }).toEqual(expected("bun-ws"));
  }, 30_000);

  test.skipIf(!node20Version.startsWith("v20."))(
    "Node 20, the ws package injected (no global WebSocket)",
    async () => {
      const { results, hasGlobalWebSocket } = await runNode(node20!, "node20-ws", { ws: true });
      expect(hasGlobalWebSocket).toBe(false);
      expect(results).toEqual(expected("node20-ws"));
    },
    30_000,
  );

  test.skipIf(!node20Version.startsWith("v20."))(
    "Node 20, its built-in WebSocket (--experimental-websocket)",
    async () => {
      const { results } = await runNode(node20!, "node20-builtin", { flags: ["--experimental-websocket"] });
      expect(results).toEqual(expected("node20-builtin"));
    },
    30_000,
  );

  test.skipIf(!node22)(
    "Node 22, its built-in WebSocket",
    async () => {
      const { results, hasGlobalWebSocket } = await runNode(node22!, "node22-builtin", {});
      expect(hasGlobalWebSocket).toBe(true);
      expect(results).toEqual(expected("node22-builtin"));
    },
    30_000,
  );

  test.skipIf(!node22)(
    "Node 22, the ws package injected",
    async () => {
      const { results } = await runNode(node22!, "node22-ws", { ws: true });
      expect(results).toEqual(expected("node22-ws"));
    },
    30_000,
  );

  test.skipIf(!hasChromium)(
    "headless Chromium, the browser bundle",
    async () => {
      const slot = await openSlot("chromium", {
        sdk: join(out, "sdk-browser.js"),
        scenarios: join(out, "scenarios-browser.js"),
      });
      const profile = mkdtempSync(join(tmpdir(), "sdk-chromium-"));
      const url = `${slot.config.control}/?ws=${encodeURIComponent(slot.config.wsUrl)}&resume=${encodeURIComponent(slot.config.resumeWsUrl)}`;
      const browser = Bun.spawn(
        [
          CHROMIUM,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--user-data-dir=${profile}`,
          url,
        ],
        { stdout: "ignore", stderr: "ignore" },
      );
      try {
        const exited = browser.exited.then((code) => ({ uncaught: [`chromium exited ${code} before reporting`] }));
        expect(await Promise.race([slot.results, exited])).toEqual(expected("chromium"));
      } finally {
        browser.kill();
        await browser.exited;
        rmSync(profile, { recursive: true, force: true });
      }
    },
    40_000,
  );
});
