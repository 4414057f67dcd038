// What the chat agent's plugin tools meet in tests: a real MCP server (the official SDK's McpServer
// over its Streamable HTTP transport, on a Node HTTP server on a free port), and a stand-in for the
// plugins service that answers the lookup queue from a table the test fills.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import type { Platform } from "../../src/shared/platform";
import {
  type InstalledLocalPlugin,
  type InstalledRemotePlugin,
  openPluginToolsQueue,
  type PluginToolsJob,
  type PluginToolsReply,
} from "../../src/shared/plugin-tools";
import type { Tier } from "../../src/shared/tiers";

export interface RecordedCall {
  tool: string;
  args: Record<string, unknown>;
}

export interface TestMcpServer {
  url: string;
  /** Tool calls the server received, in order. */
  calls: RecordedCall[];
  /** Headers of every HTTP request it received. */
  headers: IncomingHttpHeaders[];
  /** `slow` calls the client cancelled (by its timeout). */
  cancelled: string[];
  /** How the device calls `device_later` made after its call had returned ended: `ok` or the error. */
  late: string[];
  close(): Promise<void>;
}

const DeviceCallResult = z.looseObject({ result: z.unknown() });

/**
 * An MCP server with the tools the tests call: `lookup_weather` (a result), `device_tasks` (asks the
 * app for a device tool during its call, `adiuva/device_call`), `device_later` (asks once its call
 * has returned), `slow` (sleeps until cancelled or 10 s pass) and `secret` (listed, but no manifest
 * declares it). Stateful sessions, as a server that
 * sends requests to its client needs.
 */
export async function startMcpServer(): Promise<TestMcpServer> {
  const calls: RecordedCall[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const cancelled: string[] = [];
  const late: string[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const record = (tool: string, args: Record<string, unknown>) => calls.push({ tool, args });

  const build = () => {
    const server = new McpServer({ name: "test-plugin", version: "1.0.0" });
    server.registerTool(
      "lookup_weather",
      { description: "The weather in a city", inputSchema: { city: z.string() } },
      async ({ city }) => {
        record("lookup_weather", { city });
        return { content: [{ type: "text", text: `Sunny in ${city}` }] };
      },
    );
    server.registerTool(
      "device_tasks",
      {
        description: "Reads the user's tasks through the app",
        inputSchema: { tool: z.string(), args: z.record(z.string(), z.unknown()).optional() },
      },
      async ({ tool, args }, extra) => {
        record("device_tasks", { tool });
        try {
          const answer = await extra.sendRequest(
            { method: "adiuva/device_call", params: { name: tool, args: args ?? { status: "open" } } } as never,
            DeviceCallResult as never,
          );
          return { content: [{ type: "text", text: `device said ${JSON.stringify(answer)}` }] };
        } catch (error) {
          return { content: [{ type: "text", text: `device refused: ${(error as Error).message}` }], isError: true };
        }
      },
    );
    server.registerTool("slow", { description: "Takes its time", inputSchema: {} }, async (_args, extra) => {
      record("slow", {});
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        extra.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          cancelled.push(String(extra.requestId));
          resolve();
        });
      });
      return { content: [{ type: "text", text: "finally done" }] };
    });
    server.registerTool(
      "device_later",
      { description: "Asks for a device tool once it has returned", inputSchema: {} },
      async () => {
        record("device_later", {});
        // Outside any tool call: on the session's own stream, after this call's result.
        setTimeout(() => {
          server.server
            .request(
              { method: "adiuva/device_call", params: { name: "task_list", args: {} } } as never,
              DeviceCallResult as never,
            )
            .then(
              () => late.push("ok"),
              (error: Error) => late.push(error.message),
            );
        }, 20);
        return { content: [{ type: "text", text: "will ask later" }] };
      },
    );
    server.registerTool("secret", { description: "Not in any manifest", inputSchema: {} }, async () => {
      record("secret", {});
      return { content: [{ type: "text", text: "secret" }] };
    });
    return server;
  };

  const http: Server = createServer(async (request, response) => {
    headers.push(request.headers);
    const sessionId = request.headers["mcp-session-id"];
    let transport = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
    if (!transport) {
      const fresh: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, fresh);
        },
        onsessionclosed: (id) => {
          sessions.delete(id);
        },
      });
      await build().connect(fresh);
      transport = fresh;
    }
    await transport.handleRequest(request, response);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    headers,
    cancelled,
    late,
    async close() {
      for (const transport of sessions.values()) await transport.close().catch(() => {});
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A remote plugin of the test server, with limits and grants a test may change. */
export function remotePlugin(
  endpoint: string,
  overrides: Partial<InstalledRemotePlugin> & { deviceTools?: string[] } = {},
): InstalledRemotePlugin {
  const { deviceTools, ...rest } = overrides;
  return {
    pluginId: `plugin-${randomUUID()}`,
    slug: "weather",
    version: "1.2.0",
    endpoint,
    tools: [
      { name: "lookup_weather", description: "The weather in a city" },
      { name: "device_tasks" },
      { name: "slow" },
      { name: "device_later" },
    ],
    grants: { deviceTools: deviceTools ?? [], origins: [], data: [] },
    limits: { callsPerMinute: 60, timeoutMs: 5000 },
    ...rest,
  };
}

export function localPlugin(overrides: Partial<InstalledLocalPlugin> = {}): InstalledLocalPlugin {
  return {
    pluginId: `plugin-${randomUUID()}`,
    slug: "clipboard",
    version: "0.3.0",
    package: { url: "https://plugins.example.com/clipboard-0.3.0.tgz", sha256: "a".repeat(64) },
    tools: [{ name: "clipboard_read", description: "Reads the clipboard" }],
    grants: { deviceTools: ["note_create"], origins: [], data: [] },
    ...overrides,
  };
}

export interface PluginsReplica {
  /** What the stand-in answers for each user (nothing installed when absent). */
  installed: Map<string, { plugins?: InstalledRemotePlugin[]; local?: InstalledLocalPlugin[]; error?: string }>;
  /** The tiers a plugin (by id) is for, as its installed version says; absent: every tier. */
  tiers: Map<string, Tier[]>;
  /** Jobs it took, in order. */
  jobs: PluginToolsJob[];
  /** Replaces the answer with raw text for one user (a malformed reply). */
  raw: Map<string, string>;
  close(): Promise<void>;
}

/**
 * Stands in for a plugins replica: takes lookups off the queue and answers on the asking instance's
 * channel, with the plugins of the job's user that are for the job's tier.
 */
export function startPluginsReplica(platform: Platform): PluginsReplica {
  const queue = openPluginToolsQueue(platform);
  const installed: PluginsReplica["installed"] = new Map();
  const tiers: PluginsReplica["tiers"] = new Map();
  const raw = new Map<string, string>();
  const jobs: PluginToolsJob[] = [];
  queue.process(
    async (job) => {
      jobs.push(job.data);
      const { userId, requestId, replyTo, tier } = job.data;
      const entry = installed.get(userId) ?? {};
      // As the plugins service does: only what the installed version is for the asking tier.
      const forTier = <T extends { pluginId: string }>(list: T[] | undefined) =>
        (list ?? []).filter((plugin) => tiers.get(plugin.pluginId)?.includes(tier) ?? true);
      const reply: PluginToolsReply = entry.error
        ? { requestId, error: entry.error }
        : { requestId, plugins: forTier(entry.plugins), local: forTier(entry.local) };
      const text = raw.get(userId)?.replace("$REQUEST_ID", requestId) ?? JSON.stringify(reply);
      await platform.bus.publish(platform.keys.pluginToolsReplies(replyTo), text);
    },
    { concurrency: 4 },
  );
  return { installed, tiers, jobs, raw, close: () => queue.close() };
}
