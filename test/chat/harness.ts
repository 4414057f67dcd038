// Shared setup for chat tests: a real chat service (PostgreSQL, Redis) whose LLM is the fake
// OpenAI-compatible server and whose devices are an in-test DeviceRpc double. The double keeps
// the DeviceRpc contract, so swapping it for the real gateway and an SDK device changes only
// `startChat`'s `rpc` option.
import type { UIMessageChunk } from "ai";
import { buildChat, type ChatParts, type ChatServiceOptions } from "../../src/chat";
import { DeviceCallError, type DeviceCallOptions, type DeviceInfo, type DeviceRpc } from "../../src/shared/device-rpc";
import type { Platform } from "../../src/shared/platform";
import {
  createTestContext,
  eventually,
  type FakeOpenAi,
  startFakeOpenAi,
  type TestContext,
} from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";

export type ToolHandler = (args: unknown, call: DeviceCallOptions) => unknown | Promise<unknown>;

/** A DeviceRpc whose devices and tools are scripted per test. */
export class FakeDevices implements DeviceRpc {
  readonly calls: DeviceCallOptions[] = [];
  private readonly byUser = new Map<string, DeviceInfo[]>();
  private readonly handlers = new Map<string, ToolHandler>();

  connect(userId: string, tools: string[], deviceId = "device-1"): this {
    const devices = this.byUser.get(userId) ?? [];
    devices.unshift({ deviceId, connectionId: `conn-${deviceId}`, instanceId: "test", tools, connectedAt: Date.now() });
    this.byUser.set(userId, devices);
    return this;
  }

  onTool(name: string, handler: ToolHandler): this {
    this.handlers.set(name, handler);
    return this;
  }

  async call(options: DeviceCallOptions): Promise<unknown> {
    this.calls.push(options);
    const device = (this.byUser.get(options.userId) ?? []).find(
      (each) => options.deviceId === undefined || each.deviceId === options.deviceId,
    );
    if (!device) throw new DeviceCallError("device_offline", "no device is connected");
    if (!device.tools.includes(options.name)) throw new DeviceCallError("tool_not_supported", "not advertised");
    const handler = this.handlers.get(options.name);
    if (!handler) throw new DeviceCallError("tool_error", "no handler", "not_implemented");
    return handler(options.args, options);
  }

  async isOnline(userId: string): Promise<boolean> {
    return (this.byUser.get(userId) ?? []).length > 0;
  }

  async devices(userId: string): Promise<DeviceInfo[]> {
    return this.byUser.get(userId) ?? [];
  }
}

export interface ChatHarness extends AsyncDisposable {
  ctx: TestContext;
  llm: FakeOpenAi;
  devices: FakeDevices;
  url: string;
  parts: ChatParts;
  platform: Platform;
  token(userId: string, tier?: Tier): Promise<string>;
  /** POST /api/v1/chat with JSON accept: the whole reply. */
  chatJson(token: string, body: Record<string, unknown>): Promise<Response>;
  /** POST /api/v1/chat as SSE. */
  chatSse(token: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response>;
  get(token: string | undefined, path: string): Promise<Response>;
  del(token: string | undefined, path: string): Promise<Response>;
}

export async function startChat(
  options: { env?: Record<string, string>; chat?: (platform: Platform) => ChatServiceOptions; redis?: boolean } = {},
): Promise<ChatHarness> {
  const ctx = await createTestContext();
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  // Memory extraction after each turn: nothing to remember unless a test says otherwise.
  llm.onStructured(() => ({ json: { facts: [] } }));
  const devices = new FakeDevices();
  let parts: ChatParts | undefined;
  const server = await ctx.start(
    [
      async (platform) => {
        parts = await buildChat(platform, { rpc: devices, ...options.chat?.(platform) });
        return parts.module;
      },
    ],
    { service: "chat", redis: options.redis, env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", ...options.env } },
  );
  const base = `${server.url}/api/v1/chat`;
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
    devices,
    url: server.url,
    parts: parts!,
    platform: server.platform,
    token: (userId, tier = "free") => ctx.token(userId, tier),
    chatJson: (token, body) => post(token, body, "application/json"),
    chatSse: (token, body, signal) => post(token, body, "text/event-stream", signal),
    get: (token, path) => fetch(`${base}${path}`, { headers: auth(token) }),
    del: (token, path) => fetch(`${base}${path}`, { method: "DELETE", headers: auth(token) }),
    [Symbol.asyncDispose]: () => ctx.close(),
  };
}

/** Reads an SSE response to the end: the JSON chunks, and whether `[DONE]` closed it. */
export async function readSse(response: Response): Promise<{ chunks: UIMessageChunk[]; done: boolean }> {
  const text = await response.text();
  const chunks: UIMessageChunk[] = [];
  let done = false;
  for (const event of text.split("\n\n")) {
    const data = event.replace(/^data: /, "").trim();
    if (!data) continue;
    if (data === "[DONE]") done = true;
    else chunks.push(JSON.parse(data) as UIMessageChunk);
  }
  return { chunks, done };
}

export const textOf = (chunks: UIMessageChunk[]): string =>
  chunks.flatMap((chunk) => (chunk.type === "text-delta" ? [chunk.delta] : [])).join("");

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
