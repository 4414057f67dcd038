import { z } from "zod";
import { type JobQueue, openSharedJobQueue } from "./jobs";
import type { Platform } from "./platform";
import { Tier } from "./tiers";

/**
 * The chat agent's plugin tools, answered by the plugins service, which alone reads its schema.
 * As with `documents_search` (document-search.ts), the two services never call each other over
 * HTTP: the chat instance starting a turn puts a lookup on this queue and waits on its own reply
 * channel; any plugins replica answers with the signed-in user's installed, paid-up plugins that are
 * for the user's tier (remote ones for the agent, local ones for the device) and what each was granted. No token crosses: the queue lives on the internal Redis.
 */
export const PLUGIN_TOOLS_QUEUE = "plugins-installed-tools";

export const PluginToolsJob = z.object({
  userId: z.string().min(1),
  /**
   * The tier the asking side verified (the turn's token, the device session's): only plugins whose
   * installed version lists it are answered, so a user who moved to a tier a plugin is not for stops
   * getting it without uninstalling it. Required: a lookup that cannot say is not answered.
   */
  tier: Tier,
  /** The chat instance waiting; the reply goes to its channel (`keys.pluginToolsReplies`). */
  replyTo: z.string().min(1),
  requestId: z.string().min(1),
  /** Epoch ms after which nobody waits any more: the plugins replica drops the job. */
  expiresAt: z.number(),
});
export type PluginToolsJob = z.infer<typeof PluginToolsJob>;

/** What a user granted an installed plugin (a subset of what its manifest version asks for). */
export const PluginGrants = z.object({
  /** Device tools (docs/device-tools.md) the plugin may have the app call on the user's device. */
  deviceTools: z.array(z.string()),
  /** Network origins (`https://host[:port]`) the plugin may reach. */
  origins: z.array(z.string()),
  /** Kinds of the user's data the plugin may read (e.g. `documents`, `profile`). */
  data: z.array(z.string()),
});
export type PluginGrants = z.infer<typeof PluginGrants>;

export const InstalledRemotePlugin = z.object({
  pluginId: z.string(),
  /** Unique, lowercase `[a-z0-9-]`: the namespace of the plugin's tools in the agent. */
  slug: z.string(),
  version: z.string(),
  /** The MCP server, streamable HTTP. */
  endpoint: z.string().url(),
  /** The tools the installed version's manifest declares: only these are offered to the model. */
  tools: z.array(z.object({ name: z.string(), description: z.string().optional() })),
  grants: PluginGrants,
  /** Per plugin and user: calls per minute and the deadline of one call. */
  limits: z.object({ callsPerMinute: z.number().int().positive(), timeoutMs: z.number().int().positive() }),
});
export type InstalledRemotePlugin = z.infer<typeof InstalledRemotePlugin>;

/** A plugin the desktop app runs itself: announced to the device (`plugins` frame), never called by the server. */
export const InstalledLocalPlugin = z.object({
  pluginId: z.string(),
  slug: z.string(),
  version: z.string(),
  /** Where the app downloads the package, and its digest (hex SHA-256) to check it against. */
  package: z.object({ url: z.string().url(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
  tools: z.array(z.object({ name: z.string(), description: z.string().optional() })),
  grants: PluginGrants,
});
export type InstalledLocalPlugin = z.infer<typeof InstalledLocalPlugin>;

export const PluginToolsReply = z.object({
  requestId: z.string(),
  plugins: z.array(InstalledRemotePlugin).optional(),
  local: z.array(InstalledLocalPlugin).optional(),
  error: z.string().optional(),
});
export type PluginToolsReply = z.infer<typeof PluginToolsReply>;

/** Why a user's plugins changed: what `keys.pluginsChanged(userId)` carries. */
export const PLUGINS_CHANGED_REASONS = [
  "installed",
  "uninstalled",
  "upgraded",
  "suspended",
  "unsuspended",
  "removed",
] as const;

/**
 * Published by the plugins service on `keys.pluginsChanged(userId)` after the change is committed:
 * the user's installed plugins (or what they are allowed) changed, so a chat instance holding them
 * looks them up again. Best effort, like `tier_changed`: a listener that missed it sees the change
 * with its next lookup.
 */
export const PluginsChanged = z.object({
  userId: z.string(),
  pluginId: z.string(),
  reason: z.enum(PLUGINS_CHANGED_REASONS),
});
export type PluginsChanged = z.infer<typeof PluginsChanged>;

/** One attempt: a lookup nobody answered in time is not worth repeating behind the turn's back. */
export const openPluginToolsQueue = (platform: Platform) =>
  openSharedJobQueue<PluginToolsJob>(platform, PLUGIN_TOOLS_QUEUE, { attempts: 1 });

export type PluginToolsQueue = JobQueue<PluginToolsJob>;
