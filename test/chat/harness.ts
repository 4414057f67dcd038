// Shared setup for chat tests: real chat service instances (PostgreSQL, Redis, the device gateway)
// whose LLM is the fake OpenAI-compatible server; devices are SDK DeviceClients connected over the
// real WebSocket, so tool calls travel the real device RPC.
import type { UIMessageChunk } from "ai";
import { type ChatServiceModule, type ChatServiceOptions, createChatService } from "../../src/chat";
import { DeviceClient, type ToolHandler } from "../../src/client";
import type { Logger } from "../../src/shared/logger";
import type { Platform } from "../../src/shared/platform";
import {
  createTestContext,
  eventually,
  type FakeOpenAi,
  startFakeOpenAi,
  type TestContext,
} from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";

export interface ChatInstance {
  url: string;
  wsUrl: string;
  platform: Platform;
  module: ChatServiceModule;
}

export interface ChatHarness extends AsyncDisposable {
  ctx: TestContext;
  llm: FakeOpenAi;
  url: string;
  /** The first instance's chat engine, socket frame handler and gateway. */
  parts: ChatServiceModule;
  platform: Platform;
  first: ChatInstance;
  /** Another chat instance on the same database and Redis. */
  startInstance(): Promise<ChatInstance>;
  /** An SDK device for the user, connected to an instance (the first by default). */
  device(
    userId: string,
    tools?: Record<string, ToolHandler>,
    options?: { instance?: ChatInstance; tier?: Tier; deviceId?: string },
  ): Promise<DeviceClient>;
  token(userId: string, tier?: Tier): Promise<string>;
  /** POST /api/v1/chat with JSON accept: the whole reply. */
  chatJson(token: string, body: Record<string, unknown>): Promise<Response>;
  /** POST /api/v1/chat as SSE. */
  chatSse(token: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response>;
  get(token: string | undefined, path: string): Promise<Response>;
  del(token: string | undefined, path: string): Promise<Response>;
}

export async function startChat(
  options: {
    env?: Record<string, string>;
    chat?: (platform: Platform) => ChatServiceOptions;
    /** The chat service's logger (a captureLogger's, to assert on its lines); silent by default. */
    logger?: Logger;
  } = {},
): Promise<ChatHarness> {
  const ctx = await createTestContext();
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  // Memory extraction after each turn: nothing to remember unless a test says otherwise.
  llm.onStructured(() => ({ json: { facts: [] } }));
  const startInstance = async (): Promise<ChatInstance> => {
    const withLogger = (platform: Platform) => (options.logger ? { ...platform, logger: options.logger } : platform);
    const server = await ctx.start([(platform) => createChatService(withLogger(platform), options.chat?.(platform))], {
      service: "chat",
      env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", ...options.env },
    });
    return {
      url: server.url,
      wsUrl: `${server.url.replace(/^http/, "ws")}/api/v1/ws/device`,
      platform: server.platform,
      module: server.modules[0] as ChatServiceModule,
    };
  };
  const first = await startInstance();
  const base = `${first.url}/api/v1/chat`;
  const auth = (token: string | undefined): Record<string, string> =>
    token ? { authorization: `Bearer ${token}` } : {};
  const post = (token: string, body: Record<string, unknown>, accept: string, signal?: AbortSignal) =>
    fetch(base, {
      method: "POST",
      headers: { ...auth(token), "content-type": "application/json", accept },
      body: JSON.stringify(body),
      signal,
    });
  return {
    ctx,
    llm,
    url: first.url,
    parts: first.module,
    platform: first.platform,
    first,
    startInstance,
    async device(userId, tools = {}, deviceOptions = {}) {
      const client = new DeviceClient({
        url: (deviceOptions.instance ?? first).wsUrl,
        deviceId: deviceOptions.deviceId ?? `device-${crypto.randomUUID().slice(0, 8)}`,
        token: () => ctx.token(userId, deviceOptions.tier ?? "free"),
        tools,
        backoff: { initialMs: 50, maxMs: 400 },
      });
      ctx.defer(() => client.close());
      await client.connect();
      return client;
    },
    token: (userId, tier = "free") => ctx.token(userId, tier),
    chatJson: (token, body) => post(token, body, "application/json"),
    chatSse: (token, body, signal) => post(token, body, "text/event-stream", signal),
    get: (token, path) => fetch(`${base}${path}`, { headers: auth(token) }),
    del: (token, path) => fetch(`${base}${path}`, { method: "DELETE", headers: auth(token) }),
    [Symbol.asyncDispose]: () => ctx.close(),
  };
}

/** One SSE event's fields: `id` and `data` lines, or a `:` comment. */
export function sseFields(event: string): { id?: string; data?: string; comment?: string } {
  const fields: { id?: string; data?: string; comment?: string } = {};
  for (const line of event.split("\n")) {
    if (line.startsWith(":")) fields.comment = line.slice(1).trim();
    else if (line.startsWith("id: ")) fields.id = line.slice(4);
    else if (line.startsWith("data: ")) fields.data = line.slice(6);
  }
  return fields;
}

/** Reads an SSE response to the end: the JSON chunks, their event ids, and whether `[DONE]` closed it. */
export async function readSse(
  response: Response,
): Promise<{ chunks: UIMessageChunk[]; ids: Array<string | undefined>; done: boolean }> {
  const text = await response.text();
  const chunks: UIMessageChunk[] = [];
  const ids: Array<string | undefined> = [];
  let done = false;
  for (const event of text.split("\n\n")) {
    const { id, data } = sseFields(event);
    if (!data) continue;
    if (data === "[DONE]") done = true;
    else {
      chunks.push(JSON.parse(data) as UIMessageChunk);
      ids.push(id);
    }
  }
  return { chunks, ids, done };
}

/** Streamed chat requests the model has received: one per model step of a conversation turn. */
export const turns = (h: ChatHarness): number => h.llm.chatRequests().filter((each) => each.stream).length;

/** Waits for the streamed model request whose last user message contains `text`. */
export async function upstreamFor(h: ChatHarness, text: string) {
  const find = () =>
    h.llm
      .chatRequests()
      .find((each) => each.stream && JSON.stringify(each.body.messages.at(-1)?.content ?? "").includes(text));
  const found = await eventually(find, (request) => request !== undefined);
  if (!found) throw new Error(`no model request for ${text}`);
  return found;
}

/** The system message and last user message the model received in the `index`th streamed request. */
export function promptOf(llm: FakeOpenAi, index: number) {
  const request = llm.chatRequests().filter((each) => each.stream)[index];
  if (!request) throw new Error(`no chat request #${index}`);
  const messages = request.body.messages;
  const content = (message: (typeof messages)[number] | undefined) =>
    typeof message?.content === "string"
      ? message.content
      : (message?.content ?? []).map((part) => part.text ?? "").join("\n");
  const users = messages.filter((message) => message.role === "user");
  return {
    system: content(messages.find((message) => message.role === "system")),
    user: content(users.at(-1)),
    messages,
    tools: request.body.tools?.map((tool) => tool.function.name) ?? [],
  };
}
