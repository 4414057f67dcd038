// The SDK's scenarios against a live chat instance, written once and run in every runtime the app
// uses: in Bun directly, and bundled for Node (node-main.mjs) and Chromium (the page in
// runtimes.test.ts). Nothing here may use an API of one runtime only. The test process drives the
// server side through `control` (tokens, stopping and restarting the server, device RPC calls).
import type * as Sdk from "../../../src/client";

export interface ScenarioConfig {
  /** The device socket's URL, through a proxy whose port survives the server's restart. */
  wsUrl: string;
  /** Base URL of the test's control endpoints for this run. */
  control: string;
  label: string;
}

export interface ScenarioResults {
  welcome: { protocol: number; status: string } | string;
  chatTool: { calls: unknown[]; finish: string | undefined; output: unknown } | string;
  renewal: { staleRequests: boolean[]; afterwards: string } | string;
  restart: Record<string, unknown> | string;
  closed: { code: string; within1s: boolean } | string;
  uncaught: string[];
}

type Close = { code: number; reason: string; willReconnect: boolean };

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
  const client = new sdk.DeviceClient({
    url: config.wsUrl,
    deviceId: `sdk-${config.label}`,
    token: async ({ stale }) => {
      staleRequests.push(stale);
      return ((await post("/token", { tier: stale ? "pro" : "free" })) as { token: string }).token;
    },
    tools: {
      task_list: (args, context) => {
        calls.push({ args, origin: context.origin });
        return { tasks: [{ id: "t1", title: `from ${config.label}`, status: "open" }] };
      },
    },
    backoff: { initialMs: 50, maxMs: 200 },
    WebSocket: WebSocketImpl,
  });
  client.on("close", (close) => closes.push(close));
  client.on("welcome", (welcome) => welcomes.push(welcome.connection_id));
  const results: Omit<ScenarioResults, "uncaught"> = {
    welcome: "not run",
    chatTool: "not run",
    renewal: "not run",
    restart: "not run",
    closed: "not run",
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
