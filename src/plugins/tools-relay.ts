import { and, eq, isNull } from "drizzle-orm";
import {
  type InstalledLocalPlugin,
  type InstalledRemotePlugin,
  PluginToolsJob,
  type PluginToolsQueue,
  PluginToolsReply,
} from "../shared/plugin-tools";
import type { Tier } from "../shared/tiers";
import type { PluginsContext } from "./context";
import { isUsable } from "./installs";
import { installs, pluginRows, versions } from "./tables";
import { pluginColumns } from "./views";

/** Lookups one plugins replica answers at once (each one indexed query). */
const CONCURRENCY = 8;

/**
 * What the agent may use of a user's plugins: the installed ones that are published, not
 * suspended, for the user's tier as the asking side verified it (the installed version's
 * `tiers`) and free or paid for, each on its installed version with exactly what the user
 * granted. Remote plugins are for the chat service's MCP client, local ones for the device.
 * Nothing says why a plugin is left out: the model and the device are only not offered it.
 */
export async function installedTools(
  ctx: PluginsContext,
  userId: string,
  tier: Tier,
): Promise<{ plugins: InstalledRemotePlugin[]; local: InstalledLocalPlugin[] }> {
  const rows = await ctx.db
    .select({ install: installs, plugin: pluginColumns, version: versions })
    .from(installs)
    .innerJoin(pluginRows, eq(pluginRows.id, installs.pluginId))
    .innerJoin(versions, eq(versions.id, installs.versionId))
    .where(
      and(
        eq(installs.userId, userId),
        eq(pluginRows.status, "published"),
        isNull(pluginRows.suspendedAt),
        eq(versions.status, "published"),
      ),
    )
    .orderBy(pluginRows.slug);
  const plugins: InstalledRemotePlugin[] = [];
  const local: InstalledLocalPlugin[] = [];
  for (const { install, plugin, version } of rows) {
    const { manifest } = version;
    if (!isUsable(plugin, manifest, install, tier)) continue;
    const common = {
      pluginId: plugin.id,
      slug: plugin.slug,
      version: version.version,
      tools: manifest.tools.map((tool) => ({ name: tool.name, description: tool.description })),
      grants: { deviceTools: install.grantedDeviceTools, origins: install.grantedOrigins, data: install.grantedData },
    };
    if (manifest.runtime.type === "remote") {
      plugins.push({
        ...common,
        endpoint: manifest.runtime.endpoint,
        limits: {
          callsPerMinute: manifest.limits?.callsPerMinute ?? ctx.config.callsPerMinute,
          timeoutMs: manifest.limits?.timeoutMs ?? ctx.config.callTimeoutMs,
        },
      });
    } else {
      local.push({ ...common, package: { ...manifest.runtime.package } });
    }
  }
  return { plugins, local };
}

/**
 * The plugins side of the chat agent's plugin tools (src/shared/plugin-tools.ts): takes lookups
 * off the queue, answers with the job's user's usable plugins on the asking chat instance's reply
 * channel. A job past its deadline is dropped (nobody waits for it); a failure is answered as one,
 * so the turn does not wait it out.
 */
export function startToolsRelay(ctx: PluginsContext, queue: PluginToolsQueue): void {
  const { bus, keys } = ctx.platform;
  queue.process(
    async (job) => {
      const parsed = PluginToolsJob.safeParse(job.data);
      if (!parsed.success) {
        ctx.logger.error({ job_id: job.id }, "malformed plugin tools lookup dropped");
        ctx.lookups.inc({ outcome: "failed" });
        return;
      }
      const data = parsed.data;
      if (data.expiresAt < Date.now()) {
        ctx.lookups.inc({ outcome: "expired" });
        return;
      }
      let reply: PluginToolsReply;
      try {
        reply = { requestId: data.requestId, ...(await installedTools(ctx, data.userId, data.tier)) };
        ctx.lookups.inc({ outcome: "answered" });
      } catch (error) {
        ctx.logger.warn({ err: error, user_id: data.userId }, "plugin tools lookup for a chat turn failed");
        reply = { requestId: data.requestId, error: "the plugin lookup failed" };
        ctx.lookups.inc({ outcome: "failed" });
      }
      await bus.publish(keys.pluginToolsReplies(data.replyTo), JSON.stringify(PluginToolsReply.parse(reply)));
    },
    { concurrency: CONCURRENCY },
  );
}
