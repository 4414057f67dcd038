// The plugins service beside the runtimes' chat instances, on the same test context (one PostgreSQL
// database, one Redis key prefix), as a replica would run in production: the chat instances look up
// a user's local plugins through the real lookup queue and hear of installs and uninstalls on
// `pluginsChanged`. Everything goes through the service's HTTP API with signed tokens: a developer
// registers an Ed25519 key and publishes signed manifests of local plugins, the admin named in
// PLUGINS_ADMIN_USER_IDS approves them, and users install (with grants narrower than the manifest
// asks for) and uninstall them.
import { createHash } from "node:crypto";
import { createPluginsService } from "../../../src/plugins";
import type { LocalPlugin } from "../../../src/protocol";
import type { TestContext } from "../../../src/shared/testing";
import { keyPair, manifest, newUserId, signManifest } from "../../plugins/harness";

/** A local plugin as the `plugins` frame must list it once the user installed it. */
export interface PublishedLocalPlugin {
  id: string;
  entry: LocalPlugin;
}

export async function startLocalPlugins(ctx: TestContext) {
  const adminId = newUserId();
  const server = await ctx.start([(platform) => createPluginsService(platform)], {
    service: "plugins",
    env: { PLUGINS_ADMIN_USER_IDS: adminId },
  });
  const base = `${server.url}/api/v1/plugins`;

  const call = async (method: string, path: string, token: string, body?: unknown, expected = 200) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== expected) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  };

  const developer = { userId: newUserId(), ...keyPair() };
  const developerToken = await ctx.token(developer.userId, "team");
  await call(
    "POST",
    "/developers/me",
    developerToken,
    { display_name: "Example Labs", public_key: developer.publicKey },
    201,
  );

  /**
   * A local plugin created from a signed manifest, submitted and approved: live in the marketplace
   * for every tier. Its package is a name and the SHA-256 of its bytes; `grants` is what a user
   * installing it grants (part of what it asks for).
   */
  const publishLocal = async (slug: string, tool: string): Promise<PublishedLocalPlugin> => {
    const origin = `https://${slug}.example.com`;
    const body = {
      ...manifest({
        slug,
        local: true,
        deviceTools: ["task_list", "note_create"],
        origins: [origin],
        data: ["profile"],
      }),
      runtime: {
        type: "local",
        package: {
          url: `https://cdn.example.com/${slug}-1.0.0.tgz`,
          sha256: createHash("sha256").update(`the ${slug} package`).digest("hex"),
        },
      },
      tools: [{ name: tool, description: `The ${tool} of ${slug}` }],
    };
    const created = await call(
      "POST",
      "/developers/me/plugins",
      developerToken,
      { manifest: body, signature: signManifest(body, developer.privateKey) },
      201,
    );
    const id = String(created?.id);
    await call("POST", `/developers/me/plugins/${id}/versions/1.0.0/submit`, developerToken);
    await call("POST", `/admin/plugins/${id}/versions/1.0.0/approve`, await ctx.token(adminId, "team"));
    return {
      id,
      entry: {
        id,
        slug,
        version: "1.0.0",
        package: body.runtime.package,
        tools: body.tools,
        grants: { device_tools: ["task_list"], origins: [origin], data: [] },
      },
    };
  };

  return {
    publishLocal,
    /** Installs the plugin for the user (a free-tier token), with the plugin's `grants`. */
    install: async (userId: string, plugin: PublishedLocalPlugin) => {
      await call(
        "POST",
        "/installs",
        await ctx.token(userId, "free"),
        { plugin_id: plugin.id, grants: plugin.entry.grants },
        201,
      );
    },
    uninstall: async (userId: string, plugin: PublishedLocalPlugin) => {
      await call("DELETE", `/installs/${plugin.id}`, await ctx.token(userId, "free"), undefined, 204);
    },
  };
}

export type LocalPlugins = Awaited<ReturnType<typeof startLocalPlugins>>;
