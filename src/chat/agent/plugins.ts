import { createHmac } from "node:crypto";
import type { CallToolResult, Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import { type JSONSchema7, jsonSchema, type ToolSet, tool } from "ai";
import type { DeviceInfo, DeviceRpc } from "../../shared/device-rpc";
import { DEVICE_TOOL_CONTRACT, type DeviceToolName } from "../../shared/device-tools";
import { ConfigError, type Env, readConfigFile } from "../../shared/env";
import type { Keys } from "../../shared/keys";
import type { Logger } from "../../shared/logger";
import type { HostResolver } from "../../shared/network-address";
import type { InstalledRemotePlugin } from "../../shared/plugin-tools";
import type { RateLimiter } from "../../shared/rate-limit";
import type { Tier } from "../../shared/tiers";
import { DEVICE_CALL_ERRORS, DeviceCallRefusal, isTimeout, PluginClient } from "./plugin-client";
import type { PluginLookup } from "./plugin-lookup";
import { describeDeviceError } from "./toolset";

/** What the chat engine needs to give a turn the user's plugin tools (docs/plugin-tools.md). */
export interface ChatPlugins {
  lookup: PluginLookup;
  /** The shared rate limiter: each plugin's calls per minute, per user, across instances. */
  limiter: RateLimiter;
  keys: Keys;
  /** The key of the per-plugin pseudonyms (PLUGIN_PSEUDONYM_KEY_FILE); absent: none is sent. */
  pseudonymKey?: string;
  /**
   * Production (NODE_ENV=production) refuses plain http endpoints and hosts inside a network, written
   * as such or resolved to (checked before each connection).
   */
  strictEndpoints: boolean;
  /** Resolves endpoint names in strict mode; the system's resolver by default. */
  resolveHost?: HostResolver;
}

export interface PluginToolsetOptions {
  plugins: ChatPlugins | undefined;
  userId: string;
  /** The turn's verified tier: the plugins service offers only plugins whose installed version it may use. */
  tier: Tier;
  rpc: DeviceRpc;
  /** Where the plugins' device calls run: the device the turn's device tools use. */
  device: Promise<DeviceInfo | undefined>;
  /** Time a device has to answer one call (CHAT_TOOL_DEADLINE_MS). */
  deviceDeadlineMs: number;
  logger: Logger;
  /** The turn's: aborting it closes what is being opened and stops the calls. */
  signal: AbortSignal;
  /** Each call's outcome, for the metrics. */
  onCall?: (outcome: PluginCallOutcome) => void;
}

export type PluginCallOutcome = "ok" | "plugin_error" | "rate_limited" | "timeout" | "failed";

export interface PluginToolset {
  tools: ToolSet;
  /** Closes the turn's MCP connections; called once the turn has ended. */
  close(): Promise<void>;
}

/** Tool names the model may be given (OpenAI's function-name rule). */
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const SLUG = /^[a-z0-9-]+$/;
/** Longest wait for a server to connect and list its tools before the turn goes on without it. */
const CONNECT_DEADLINE_MS = 3000;
/** Longest text of one result handed to the model. */
const MAX_RESULT_CHARS = 50_000;

/** `<slug>__<tool>`: slugs have no `_`, so the first `__` always separates the two. */
export const namespacedToolName = (slug: string, toolName: string): string => `${slug}__${toolName}`;

/** HMAC-SHA256 of the plugin id and the user id: stable for one plugin, unlinkable across plugins. */
export function pluginPseudonym(key: string, pluginId: string, userId: string): string {
  return createHmac("sha256", key).update(pluginId).update("\0").update(userId).digest("base64url");
}

/** Reads PLUGIN_PSEUDONYM_KEY_FILE once, at start. */
export function loadPseudonymKey(env: Env): string | undefined {
  if (!env.PLUGIN_PSEUDONYM_KEY_FILE) return undefined;
  const key = readConfigFile("PLUGIN_PSEUDONYM_KEY_FILE", env.PLUGIN_PSEUDONYM_KEY_FILE).trim();
  if (key.length < 32) {
    throw new ConfigError("invalid configuration: PLUGIN_PSEUDONYM_KEY_FILE must hold at least 32 characters");
  }
  return key;
}

/**
 * The turn's plugin tools: the user's installed remote plugins (from the plugins service), each
 * one's MCP server connected, and of its tools those both its installed version's manifest
 * declares and its server lists, named `<slug>__<tool>`. A plugin that cannot be reached in time is
 * left out of the turn (logged); nothing here fails the turn.
 */
export async function pluginToolset(options: PluginToolsetOptions): Promise<PluginToolset> {
  const empty: PluginToolset = { tools: {}, close: async () => {} };
  const { plugins } = options;
  if (!plugins) return empty;
  const installed = await plugins.lookup.installed(options.userId, options.tier).catch(() => undefined);
  const remote = (installed?.remote ?? []).filter((plugin) => {
    if (SLUG.test(plugin.slug)) return true;
    options.logger.warn({ plugin_id: plugin.pluginId }, "plugin left out: its slug is not [a-z0-9-]");
    return false;
  });
  if (remote.length === 0) return empty;
  const opened = await Promise.all(remote.map((plugin) => openClient(plugins, options, plugin)));
  const clients = opened.filter((client): client is PluginClient => client !== undefined);
  const close = async () => {
    await Promise.all(clients.map((client) => client.close()));
  };
  try {
    const tools: ToolSet = {};
    for (const client of clients) Object.assign(tools, clientTools(plugins, options, client));
    return { tools, close };
  } catch (error) {
    options.logger.warn({ err: error }, "plugin tools not built; the turn goes on without them");
    await close();
    return empty;
  }
}

async function openClient(
  plugins: ChatPlugins,
  options: PluginToolsetOptions,
  plugin: InstalledRemotePlugin,
): Promise<PluginClient | undefined> {
  try {
    return await PluginClient.open(
      {
        plugin,
        pseudonym: plugins.pseudonymKey && pluginPseudonym(plugins.pseudonymKey, plugin.pluginId, options.userId),
        strictEndpoints: plugins.strictEndpoints,
        resolveHost: plugins.resolveHost,
        deviceCall: (name, args, signal) => runDeviceTool(options, plugin, name, args, signal),
      },
      Math.min(plugin.limits.timeoutMs, CONNECT_DEADLINE_MS),
      options.signal,
    );
  } catch (error) {
    options.logger.warn(
      { plugin_id: plugin.pluginId, slug: plugin.slug, err: (error as Error).message },
      "plugin server not reached; the turn goes on without its tools",
    );
    return undefined;
  }
}

/** The client's tools the manifest declares, as AI SDK tools; the others are not offered at all. */
function clientTools(plugins: ChatPlugins, options: PluginToolsetOptions, client: PluginClient): ToolSet {
  const { plugin } = client;
  const declared = new Map(plugin.tools.map((entry) => [entry.name, entry]));
  const tools: ToolSet = {};
  for (const listed of client.tools) {
    if (!declared.has(listed.name)) continue;
    const name = namespacedToolName(plugin.slug, listed.name);
    const schema = inputSchemaOf(listed);
    if (!TOOL_NAME.test(name) || !schema) {
      const why = schema ? "its name with the plugin's is not a valid tool name" : "its input schema is not an object";
      options.logger.warn({ slug: plugin.slug, tool: listed.name.slice(0, 128), why }, "plugin tool left out");
      continue;
    }
    const description = listed.description ?? declared.get(listed.name)?.description ?? "";
    tools[name] = tool<Record<string, unknown>, unknown, Record<string, unknown>>({
      description: `${description} (from the ${plugin.slug} plugin)`.trim(),
      inputSchema: jsonSchema<Record<string, unknown>>(schema),
      execute: async (input, { abortSignal }) => {
        await admitCall(plugins, options, plugin);
        let result: CallToolResult;
        try {
          result = await client.call(listed.name, input, plugin.limits.timeoutMs, abortSignal);
        } catch (error) {
          options.onCall?.(isTimeout(error) ? "timeout" : "failed");
          // Thrown errors become tool-error parts: the model reads the reason and the turn goes on.
          throw new Error(describeCallFailure(plugin, error, abortSignal));
        }
        options.onCall?.(result.isError ? "plugin_error" : "ok");
        if (result.isError) throw new Error(`plugin_error: ${resultText(result) || "the plugin reported an error"}`);
        return modelOutput(result);
      },
    });
  }
  return tools;
}

/** The MCP tool's input schema, without `$schema` (providers take the rest as is); undefined if not an object schema. */
function inputSchemaOf(listed: McpTool): JSONSchema7 | undefined {
  const { $schema: _, ...schema } = listed.inputSchema as Record<string, unknown>;
  return schema.type === "object" ? (schema as JSONSchema7) : undefined;
}

/**
 * The plugin's calls per minute for this user, shared by every instance; a refusal is a tool error
 * the model reads, and the server is not called.
 */
async function admitCall(
  plugins: ChatPlugins,
  options: PluginToolsetOptions,
  plugin: InstalledRemotePlugin,
): Promise<void> {
  const limit = plugin.limits.callsPerMinute;
  const decision = await plugins.limiter
    .check(plugins.keys.rateLimit("plugin-calls", `${plugin.pluginId}:${options.userId}`), {
      limit,
      windowMs: 60_000,
    })
    .catch((error: Error) => {
      // The limiter falls back per instance while Redis is away; should even that fail, the call goes on.
      options.logger.warn({ err: error.message }, "plugin rate limit unavailable");
      return undefined;
    });
  if (!decision || decision.allowed) return;
  options.onCall?.("rate_limited");
  const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  throw new Error(
    `rate_limited: the ${plugin.slug} plugin allows ${limit} calls a minute; it was not called, try again in ${seconds} s`,
  );
}

function describeCallFailure(plugin: InstalledRemotePlugin, error: unknown, signal: AbortSignal | undefined): string {
  if (signal?.aborted) return "cancelled: the turn was stopped";
  if (isTimeout(error)) return `timeout: the ${plugin.slug} plugin did not answer within ${plugin.limits.timeoutMs} ms`;
  const message = error instanceof Error ? error.message : String(error);
  return `plugin_unavailable: the ${plugin.slug} plugin failed (${message.slice(0, 200)})`;
}

/** What the model reads: the structured result when there is one, else the text parts. */
function modelOutput(result: CallToolResult): unknown {
  if (result.structuredContent) return result.structuredContent;
  return resultText(result);
}

function resultText(result: CallToolResult): string {
  const text = (result.content ?? [])
    .map((part) => {
      if (part.type === "text") return part.text;
      if (part.type === "resource" && "text" in part.resource) return part.resource.text;
      return `[${part.type} omitted]`;
    })
    .join("\n");
  return text.length > MAX_RESULT_CHARS ? `${text.slice(0, MAX_RESULT_CHARS)}…` : text;
}

/**
 * A device tool the plugin's server asked for, its grant already checked: run on the turn's device
 * through the device RPC, as the agent's own device tools are, with arguments held to the contract.
 */
async function runDeviceTool(
  options: PluginToolsetOptions,
  plugin: InstalledRemotePlugin,
  name: string,
  args: Record<string, unknown>,
  signal: AbortSignal,
): Promise<unknown> {
  const spec = Object.hasOwn(DEVICE_TOOL_CONTRACT, name) ? DEVICE_TOOL_CONTRACT[name as DeviceToolName] : undefined;
  if (!spec) throw new DeviceCallRefusal(DEVICE_CALL_ERRORS.unknown_tool, `unknown_tool: ${name} is not a device tool`);
  const parsed = spec.args.safeParse(args);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new DeviceCallRefusal(
      DEVICE_CALL_ERRORS.invalid_args,
      `invalid_args: ${where}${issue?.message ?? "invalid arguments"}`,
    );
  }
  const device = await options.device;
  if (!device)
    throw new DeviceCallRefusal(DEVICE_CALL_ERRORS.device_error, "device_offline: no device of the user is connected");
  try {
    return await options.rpc.call({
      userId: options.userId,
      deviceId: device.deviceId,
      name,
      args: parsed.data,
      deadlineMs: options.deviceDeadlineMs,
      signal,
      origin: `plugin:${plugin.slug}`,
    });
  } catch (error) {
    throw new DeviceCallRefusal(DEVICE_CALL_ERRORS.device_error, describeDeviceError(error));
  }
}
