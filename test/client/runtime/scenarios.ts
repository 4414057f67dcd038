// The SDK's scenarios against a live chat instance, written once and run in every runtime the app
// uses: in Bun directly, and bundled for Node (node-main.mjs) and Chromium (the page in
// runtimes.test.ts). Nothing here may use an API of one runtime only. The test process drives the
// server side through `control` (tokens, stopping and restarting the server, device RPC calls,
// agent runs over the small directory the device serves, installing and uninstalling the user's
// local plugins). The resume scenario (./resume.ts) runs against a scripted server instead, which
// drops the socket mid-turn at a known chunk.
import type * as Sdk from "../../../src/client";
import { type ResumeResult, runResumeScenario } from "./resume";

export interface ScenarioConfig {
  /** The device socket's URL, through a proxy whose port survives the server's restart. */
  wsUrl: string;
  /** Base URL of the test's control endpoints for this run. */
  control: string;
  label: string;
  /** A scripted server playing the resume scenario (support/scripted-server.ts `resumeScript`). */
  resumeWsUrl: string;
}

export interface ScenarioResults {
  welcome: { protocol: number; status: string } | string;
  plugins: PluginsResult | string;
  chatTool: { calls: unknown[]; finish: string | undefined; output: unknown } | string;
  agentRun: AgentRunResult | string;
  renewal: { staleRequests: boolean[]; afterwards: string } | string;
  restart: Record<string, unknown> | string;
  closed: { code: string; within1s: boolean } | string;
  resume: ResumeResult | string;
  uncaught: string[];
}

export interface AgentRunResult {
  /** The `status` of the run's `finished` agent_event, and the run as the agent service reports it. */
  finished: unknown;
  server: unknown;
  /** The run's first and last agent_event. */
  events: string[];
  /** Every origin the device's calls carried, the run's id written `<run>`. */
  origins: string[];
  reads: Record<string, number>;
  /** Every write call, sorted: a duplicate would show twice. */
  writes: Array<{ tool: string; key: unknown; title: unknown; project_id: unknown }>;
}

/** The `plugins` events the device got: after its welcome, after an install, after an uninstall. */
export interface PluginsResult {
  atWelcome: Sdk.PluginsFrame;
  afterInstall: Sdk.PluginsFrame;
  afterUninstall: Sdk.PluginsFrame;
  /** How many had come by then: one per change, none more. */
  events: number;
}

type Close = { code: number; reason: string; willReconnect: boolean };

/** The directory the device serves to agent runs: one file with a project and its task, one note, one with nothing. */
export const AGENT_DIR = "/sdk-files";
export const AGENT_FILES: Record<string, string> = {
  [`${AGENT_DIR}/plan.md`]: "# Garden\nPROJECT: garden\nTASK: water the roses | garden",
  [`${AGENT_DIR}/ideas.md`]: "NOTE: compost | mix greens and browns",
  [`${AGENT_DIR}/prose.md`]: "just some prose with nothing to extract",
};

export async function runScenarios(
  sdk: typeof Sdk,
  config: ScenarioConfig,
  WebSocketImpl?: Sdk.WebSocketConstructor,
): Promise<Omit<ScenarioResults, "uncaught">> {
  const post = async (path: string, body: unknown = {}) => {
    const response = await fetch(`${config.control}${path}`, { method: "POST", body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json() as Promise<unknown>;
  };
  const staleRequests: boolean[] = [];
  const calls: unknown[] = [];
  const closes: Close[] = [];
  const welcomes: string[] = [];
  const agentEvents: Array<{ run_id: string; event: string; status?: unknown }> = [];
  const pluginEvents: Sdk.PluginsFrame[] = [];
  const agentCalls: Array<{ tool: string; args: Record<string, unknown>; origin: string }> = [];
  const agentTool =
    (tool: string, answer: (args: Record<string, unknown>) => unknown) => (args: unknown, context: Sdk.ToolContext) => {
      agentCalls.push({ tool, args: args as Record<string, unknown>, origin: context.origin });
      return answer(args as Record<string, unknown>);
    };
  const created = (args: Record<string, unknown>) => ({ id: `id-${String(args.idempotency_key)}` });
  const deviceId = `sdk-${config.label}`;
  const client = new sdk.DeviceClient({
    url: config.wsUrl,
    deviceId,
    token: async ({ stale }) => {
      staleRequests.push(stale);
      return ((await post("/token", { tier: stale ? "pro" : "free" })) as { token: string }).token;
    },
    tools: {
      task_list: (args, context) => {
        calls.push({ args, origin: context.origin });
        return { tasks: [{ id: "t1", title: `from ${config.label}`, status: "open" }] };
      },
      fs_list_dir: agentTool("fs_list_dir", ({ path }) => ({
        entries: Object.keys(AGENT_FILES)
          .filter((file) => file.startsWith(`${String(path).replace(/\/$/, "")}/`))
          .map((file) => ({ path: file, type: "file", size: AGENT_FILES[file]!.length, mtime: 0 })),
      })),
      fs_read_file: agentTool("fs_read_file", ({ path }) => {
        const content = AGENT_FILES[String(path)];
        if (content === undefined) throw new sdk.ToolFailure("not_found", `no such file ${String(path)}`);
        return { content, encoding: "utf8", truncated: false };
      }),
      project_create: agentTool("project_create", created),
      task_create: agentTool("task_create", created),
      note_create: agentTool("note_create", created),
      timeline_add_event: agentTool("timeline_add_event", created),
    },
    backoff: { initialMs: 50, maxMs: 200 },
    WebSocket: WebSocketImpl,
  });
  client.on("close", (close) => closes.push(close));
  client.on("welcome", (welcome) => welcomes.push(welcome.connection_id));
  client.on("agent_event", (event) => agentEvents.push(event));
  client.on("plugins", (event) => pluginEvents.push(event));
  const results: Omit<ScenarioResults, "uncaught"> = {
    welcome: "not run",
    plugins: "not run",
    chatTool: "not run",
    agentRun: "not run",
    renewal: "not run",
    restart: "not run",
    closed: "not run",
    resume: "not run",
  };
  const attempt = async <K extends keyof typeof results>(key: K, run: () => Promise<(typeof results)[K]>) => {
    try {
      results[key] = await run();
    } catch (error) {
      results[key] = `failed: ${error instanceof Error ? `${error.name} ${error.message}` : String(error)}`;
    }
  };

  await attempt("welcome", async () => {
    const welcome = await client.connect();
    return { protocol: welcome.protocol, status: client.status };
  });

  await attempt("plugins", async () => {
    // The user installed the control's "first" plugin before the device connected: the event after
    // the welcome lists it. Each install or uninstall while connected brings the whole new list.
    const atWelcome = await until(() => pluginEvents[0], "the plugins event after welcome");
    await post("/install", { plugin: "second" });
    const afterInstall = await until(() => pluginEvents[1], "a plugins event after the install");
    await post("/uninstall", { plugin: "first" });
    const afterUninstall = await until(() => pluginEvents[2], "a plugins event after the uninstall");
    return { atWelcome, afterInstall, afterUninstall, events: pluginEvents.length };
  });

  await attempt("chatTool", async () => {
    const stream = client.chat({ text: `sdk-tool ${config.label}` });
    let output: unknown;
    for await (const { chunk } of stream) {
      const part = chunk as { type: string; output?: unknown };
      if (part.type === "tool-output-available") output = part.output;
    }
    const done = (await stream.done) as { finish_reason?: string };
    return { calls: [...calls], finish: done.finish_reason, output };
  });

  await attempt("agentRun", async () => {
    // The control endpoint starts an agent service instance, creates a configuration over AGENT_DIR
    // for this user and triggers a run on this device; "/agent-done" reports the run and stops it.
    const { run_id: runId } = (await post("/agent-run", { device_id: deviceId, path: AGENT_DIR })) as {
      run_id: string;
    };
    try {
      const final = await until(
        () => agentEvents.find((event) => event.run_id === runId && event.event === "finished"),
        "the run's finished agent_event",
        20_000,
      );
      const events = agentEvents.filter((event) => event.run_id === runId).map((event) => event.event);
      const reads: Record<string, number> = {};
      const writes: AgentRunResult["writes"] = [];
      for (const { tool, args } of agentCalls) {
        if (tool.startsWith("fs_")) reads[tool] = (reads[tool] ?? 0) + 1;
        else
          writes.push({
            tool,
            key: args.idempotency_key,
            title: args.title ?? args.name,
            project_id: args.project_id ?? null,
          });
      }
      writes.sort((a, b) => `${a.tool} ${a.key}`.localeCompare(`${b.tool} ${b.key}`));
      return {
        finished: final.status,
        server: await post("/agent-done", { run_id: runId }),
        events: [events[0] ?? "none", events.at(-1) ?? "none"],
        origins: [...new Set(agentCalls.map((call) => call.origin.replace(runId, "<run>")))],
        reads,
        writes,
      };
    } catch (error) {
      await post("/agent-done", { run_id: runId }).catch(() => undefined);
      throw error;
    }
  });

  await attempt("renewal", async () => {
    await post("/tier");
    await until(() => staleRequests.includes(true), "a token request with stale: true");
    // Frames are read in order: the turn runs only once the renewed token was taken.
    const done = await client.chat({ text: `sdk-plain ${config.label}` }).done;
    return { staleRequests: [...staleRequests], afterwards: done.type };
  });

  await attempt("restart", async () => {
    const before = client.connectionId;
    // A journey waits for an agent replica (there is none): the socket closing must end it.
    const journey = client.startJourney("file_organizer").then(
      () => "resolved",
      (error: { code?: string }) => error.code,
    );
    await post("/down");
    const goingAway = await until(() => closes.find((close) => close.code === 1001), "close 1001");
    // Well inside the 10 s connect timeout: a refused attempt must count as failed on its own.
    const refused = await until(() => closes.find((close) => close.code === 1006), "a refused attempt", 2000);
    const statusWhileDown = client.status;
    const started = Date.now();
    const chatWhileDown = await client.chat({ text: "hello" }).done.then(
      () => "resolved",
      (error: { code?: string; name?: string }) => `${error.name}:${error.code}`,
    );
    const journeyWhileDown = await client.startJourney("file_organizer").then(
      () => "resolved",
      (error: { code?: string }) => error.code,
    );
    const rejectMs = Date.now() - started;
    await post("/up");
    await until(() => client.status === "open" && client.connectionId !== before, "reconnection");
    const call = await post("/call", { name: "task_list", args: { status: "all" } });
    return {
      pendingJourney: await journey,
      goingAway,
      refused: { code: refused.code, willReconnect: refused.willReconnect },
      statusWhileDown,
      chatWhileDown,
      journeyWhileDown,
      rejectedWithin1s: rejectMs < 1000,
      newConnection: welcomes.length >= 2 && client.connectionId !== before,
      call,
    };
  });

  await attempt("closed", async () => {
    client.close();
    const started = Date.now();
    const code = await client.chat({ text: "after close" }).done.then(
      () => "resolved",
      (error: { code?: string }) => String(error.code),
    );
    return { code, within1s: Date.now() - started < 1000 };
  });
  client.close();

  await attempt("resume", () => runResumeScenario(sdk, config.resumeWsUrl, WebSocketImpl));
  return results;
}

async function until<T>(probe: () => T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
