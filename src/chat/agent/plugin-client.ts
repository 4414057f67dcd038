import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type CallToolResult, ErrorCode, McpError, type Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { type HostResolver, isPrivateHost, systemResolver } from "../../shared/network-address";
import { type HostPin, HostRefused, pinnedFetch, publicAddressPin } from "../../shared/pinned-fetch";
import type { InstalledRemotePlugin } from "../../shared/plugin-tools";
import { withTimeout } from "../../shared/timeout";

/**
 * The request an MCP server sends the app, during one of its tool calls, to have a device tool
 * (docs/device-tools.md) run on the user's device. Answered with `{result}`, or a JSON-RPC error
 * whose code is one of DEVICE_CALL_ERRORS and whose message starts with the reason.
 */
export const DEVICE_CALL_METHOD = "adiuva/device_call";

export const DeviceCallRequest = z.object({
  method: z.literal(DEVICE_CALL_METHOD),
  params: z.object({
    name: z.string().min(1).max(64),
    args: z.record(z.string(), z.unknown()).default({}),
  }),
});

/** JSON-RPC error codes of a refused or failed `adiuva/device_call`, outside JSON-RPC's reserved range. */
export const DEVICE_CALL_ERRORS = {
  /** The user did not grant the plugin that device tool, or no tool call of the plugin is running. */
  permission_denied: 403,
  /** Not a device tool of the contract. */
  unknown_tool: 404,
  /** Arguments that do not match the contract's schema of the tool (JSON-RPC's invalid params). */
  invalid_args: ErrorCode.InvalidParams,
  /** The device could not run it (offline, its own error, its deadline). */
  device_error: 502,
} as const;

/** Thrown by a device-call handler: answered as that JSON-RPC error, its message as is. */
export class DeviceCallRefusal extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Header carrying the user's pseudonym for this plugin, when the server has a pseudonym key. */
export const PSEUDONYM_HEADER = "x-adiuva-pseudonym";

export interface PluginClientOptions {
  plugin: InstalledRemotePlugin;
  /** Stable per user and plugin, unlinkable across plugins; absent: the server learns no identity. */
  pseudonym?: string;
  /** Refuse plain http and addresses on private networks, literal or resolved (production). */
  strictEndpoints: boolean;
  /** Resolves the endpoint's name in strict mode; the system's resolver by default. */
  resolveHost?: HostResolver;
  /** Runs a granted device tool for a request of this plugin's server. */
  deviceCall(name: string, args: Record<string, unknown>, signal: AbortSignal): Promise<unknown>;
}

/**
 * Why an endpoint is not connected, or undefined when it may be, from the URL alone. Strict
 * (production) also refuses plain http and hosts inside a network written as such
 * (src/shared/network-address.ts); where a name leads is checked when connecting (`pinnedFetch`).
 */
export function endpointProblem(endpoint: string, strict: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return "not a URL";
  }
  if (url.username || url.password) return "credentials in the URL";
  if (url.protocol !== "https:" && url.protocol !== "http:") return `scheme ${url.protocol}`;
  if (!strict) return undefined;
  if (url.protocol !== "https:") return "plain http";
  if (isPrivateHost(url.hostname)) return "a private or loopback address";
  return undefined;
}

/**
 * The origins this client may send a request to: the endpoint's own, and those the user granted the
 * plugin. The transport follows redirects only within the endpoint's origin (its default policy),
 * and every request it makes, redirects included, passes this check first.
 */
export function allowedOrigins(plugin: InstalledRemotePlugin): Set<string> {
  const origins = new Set([new URL(plugin.endpoint).origin]);
  for (const granted of plugin.grants.origins) {
    try {
      origins.add(new URL(granted).origin);
    } catch {
      // not an origin: grants nothing
    }
  }
  return origins;
}

/**
 * Every request the transport makes, redirects included, goes to an allowed origin; in strict mode
 * only to the address the pin checked for its host (the name is resolved and judged once per turn,
 * and the connection goes to that address: the name cannot be pointed inside the network between
 * the check and the connection).
 */
function guardedFetch(origins: Set<string>, pin: HostPin | undefined) {
  const connect = pin ? pinnedFetch({ pin }) : undefined;
  return (url: string | URL, init?: RequestInit): Promise<Response> => {
    const origin = new URL(String(url)).origin;
    if (!origins.has(origin)) return Promise.reject(new Error(`origin_not_allowed: ${origin}`));
    // Never followed by fetch itself, so no hop escapes the check above.
    return connect ? connect(url, init) : fetch(url, { ...init, redirect: "manual" });
  };
}

/**
 * One plugin's MCP server for one chat turn: connected (initialize, tools/list) before the model
 * is called, closed when the turn ends. Its server may ask for device tools (DEVICE_CALL_METHOD)
 * only while one of its tool calls runs, and only those the user granted it.
 */
export class PluginClient {
  /** The tools the server listed. */
  tools: McpTool[] = [];
  private active = 0;
  /** Aborted whenever the last running tool call ends: device calls made for it stop with it. */
  private idle = new AbortController();

  private constructor(
    readonly plugin: InstalledRemotePlugin,
    private readonly options: PluginClientOptions,
    private readonly client: Client,
    private readonly transport: StreamableHTTPClientTransport,
  ) {
    client.setRequestHandler(DeviceCallRequest, (request, extra) => this.onDeviceCall(request.params, extra.signal));
  }

  /** Connects and lists the server's tools within `deadlineMs`; rejects on any failure (the turn leaves the plugin out). */
  static async open(options: PluginClientOptions, deadlineMs: number, signal: AbortSignal): Promise<PluginClient> {
    const { plugin } = options;
    const problem = endpointProblem(plugin.endpoint, options.strictEndpoints);
    if (problem) throw new Error(`endpoint refused: ${problem}`);
    const pin = options.strictEndpoints
      ? publicAddressPin(options.resolveHost ?? systemResolver, deadlineMs)
      : undefined;
    // The endpoint's name is judged before anything is sent, for a clear reason when it is refused.
    await pin?.(new URL(plugin.endpoint).hostname).catch((error: Error) => {
      throw error instanceof HostRefused ? new Error(`endpoint refused: ${error.message}`) : error;
    });
    const headers: Record<string, string> = options.pseudonym ? { [PSEUDONYM_HEADER]: options.pseudonym } : {};
    const transport = new StreamableHTTPClientTransport(new URL(plugin.endpoint), {
      requestInit: { headers },
      fetch: guardedFetch(allowedOrigins(plugin), pin),
      redirectPolicy: "same-origin",
      // A dropped stream is not retried behind the turn's back: the call fails and the model is told.
      reconnectionOptions: {
        maxRetries: 0,
        initialReconnectionDelay: 1000,
        maxReconnectionDelay: 1000,
        reconnectionDelayGrowFactor: 1,
      },
    });
    const client = new Client(
      { name: "adiuva", version: "1.0.0" },
      { capabilities: { experimental: { [DEVICE_CALL_METHOD]: { tools: plugin.grants.deviceTools } } } },
    );
    const opened = new PluginClient(plugin, options, client, transport);
    const requestOptions = { signal: AbortSignal.any([signal, AbortSignal.timeout(deadlineMs)]), timeout: deadlineMs };
    try {
      await client.connect(transport, requestOptions);
      let cursor: string | undefined;
      // A few pages at most: a server listing without end must not hold the turn.
      for (let page = 0; page < 10; page += 1) {
        const listed = await client.listTools(cursor ? { cursor } : undefined, requestOptions);
        opened.tools.push(...listed.tools);
        cursor = listed.nextCursor;
        if (!cursor) break;
      }
      return opened;
    } catch (error) {
      await client.close().catch(() => {});
      throw error;
    }
  }

  /**
   * Calls one of the server's tools within `timeoutMs` (the request is cancelled past it). Resolves
   * with the server's result, `isError` ones included; rejects on a timeout, an abort or a failure.
   */
  async call(
    name: string,
    args: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<CallToolResult> {
    this.active += 1;
    try {
      const result = await this.client.callTool({ name, arguments: args }, undefined, {
        timeout: timeoutMs,
        maxTotalTimeout: timeoutMs,
        signal,
      });
      return result as CallToolResult;
    } finally {
      this.active -= 1;
      if (this.active === 0) {
        this.idle.abort();
        this.idle = new AbortController();
      }
    }
  }

  /** Ends the server's session (best effort, briefly) and the connection. */
  async close(): Promise<void> {
    await withTimeout(this.transport.terminateSession(), 1000, "plugin session end").catch(() => {});
    await this.client.close().catch(() => {});
  }

  private async onDeviceCall(
    params: { name: string; args: Record<string, unknown> },
    signal: AbortSignal,
  ): Promise<{ result: unknown }> {
    const { plugin } = this;
    if (this.active === 0) {
      throw new DeviceCallRefusal(
        DEVICE_CALL_ERRORS.permission_denied,
        "permission_denied: device tools are only available during one of the plugin's tool calls",
      );
    }
    if (!plugin.grants.deviceTools.includes(params.name)) {
      throw new DeviceCallRefusal(
        DEVICE_CALL_ERRORS.permission_denied,
        `permission_denied: the user did not grant the ${plugin.slug} plugin the device tool ${params.name}`,
      );
    }
    const result = await this.options.deviceCall(params.name, params.args, AbortSignal.any([signal, this.idle.signal]));
    return { result };
  }
}

/** True when an MCP request failed by its own timeout. */
export const isTimeout = (error: unknown): boolean =>
  error instanceof McpError && error.code === ErrorCode.RequestTimeout;
