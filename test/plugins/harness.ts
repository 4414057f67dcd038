// Shared setup for the plugins tests: the real service on a real PostgreSQL and Redis, one admin
// named in PLUGINS_ADMIN_USER_IDS, developers with real Ed25519 key pairs who sign their manifests
// as docs/plugins.md says (canonical JSON, node:crypto's Ed25519), and helpers that walk a plugin
// through publishing, review and install over HTTP.
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { createPluginsService, type PluginsServiceOptions } from "../../src/plugins";
import { canonicalJson } from "../../src/plugins/manifest";
import { ExportPartEvent, publishExportRequested } from "../../src/shared/events/user-export";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, eventually, type PlatformOverrides, type TestContext } from "../../src/shared/testing";
import type { Tier } from "../../src/shared/tiers";

export const newUserId = () => crypto.randomUUID();

export interface Call {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

// biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
export type Answer = { status: number; body: any; headers: Headers };

/** An Ed25519 key pair, its public key as the API takes it (base64 of the 32 raw bytes). */
export function keyPair(): { publicKey: string; privateKey: KeyObject } {
  const pair = generateKeyPairSync("ed25519");
  const { x } = pair.publicKey.export({ format: "jwk" }) as { x: string };
  return { publicKey: Buffer.from(x, "base64url").toString("base64"), privateKey: pair.privateKey };
}

/** The developer's signature of a manifest: Ed25519 over its canonical JSON, base64. */
export const signManifest = (manifest: unknown, privateKey: KeyObject) =>
  sign(null, Buffer.from(canonicalJson(manifest), "utf8"), privateKey).toString("base64");

export interface ManifestOptions {
  slug?: string;
  version?: string;
  name?: string;
  description?: string;
  categories?: string[];
  endpoint?: string;
  local?: boolean;
  deviceTools?: string[];
  origins?: string[];
  data?: string[];
  pricing?: Record<string, unknown>;
  tiers?: string[];
  limits?: Record<string, number>;
  changelog?: string;
}

/** A valid manifest; any field can be given. */
export function manifest(options: ManifestOptions = {}): Record<string, unknown> {
  const result: Record<string, unknown> = {
    manifestVersion: 1,
    name: options.name ?? "Weather",
    slug: options.slug ?? `p-${crypto.randomUUID().slice(0, 8)}`,
    description: options.description ?? "Forecasts for where you are.",
    icon: "https://cdn.example.com/icon.png",
    categories: options.categories ?? ["productivity"],
    publisher: { name: "Example Labs", url: "https://example.com" },
    version: options.version ?? "1.0.0",
    changelog: options.changelog ?? "First release.",
    runtime: options.local
      ? { type: "local", package: { url: "https://cdn.example.com/weather.tgz", sha256: "a".repeat(64) } }
      : { type: "remote", endpoint: options.endpoint ?? "https://mcp.example.com/mcp", transport: "streamable-http" },
    tools: [
      { name: "forecast", description: "The forecast for a place" },
      { name: "alerts", description: "Weather alerts" },
    ],
    permissions: {
      deviceTools: options.deviceTools ?? ["task_list"],
      origins: options.origins ?? ["https://api.weather.example"],
      data: options.data ?? ["profile"],
    },
    pricing: options.pricing ?? { model: "free" },
    tiers: options.tiers ?? ["free", "pro", "power", "team"],
  };
  if (options.limits) result.limits = options.limits;
  return result;
}

export interface Developer {
  userId: string;
  token: string;
  publicKey: string;
  privateKey: KeyObject;
}

/** The service on a fresh database; `service` as production would run it (strict endpoints) or not. */
export async function startPlugins(overrides: PlatformOverrides = {}, service: PluginsServiceOptions = {}) {
  const ctx: TestContext = await createTestContext();
  const adminId = newUserId();
  const server = await ctx.start([(platform) => createPluginsService(platform, service)], {
    ...overrides,
    service: "plugins",
    env: { PLUGINS_ADMIN_USER_IDS: adminId, ...overrides.env },
  });
  const base = `${server.url}/api/v1/plugins`;

  const call = async (method: string, path: string, options: Call = {}): Promise<Answer> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] ??= "application/json";
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    }
    const response = await fetch(`${base}${path}`, { method, headers, body });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
  };

  const token = (userId: string, tier: Tier = "free") => ctx.token(userId, tier);
  // Admins are users too: a team token, so their own budget never gets in a test's way.
  const adminToken = () => ctx.token(adminId, "team");

  /** A user registered as a developer with a fresh key pair. */
  const developer = async (tier: Tier = "team"): Promise<Developer> => {
    const userId = newUserId();
    const userToken = await token(userId, tier);
    const keys = keyPair();
    const answer = await call("POST", "/developers/me", {
      token: userToken,
      body: { display_name: "Example Labs", public_key: keys.publicKey },
    });
    if (answer.status !== 201) throw new Error(`developer: ${answer.status} ${JSON.stringify(answer.body)}`);
    return { userId, token: userToken, ...keys };
  };

  /** Creates a plugin from a signed manifest: the API's answer. */
  const create = (dev: Developer, body: Record<string, unknown>) =>
    call("POST", "/developers/me/plugins", {
      token: dev.token,
      body: { manifest: body, signature: signManifest(body, dev.privateKey) },
    });

  const addVersion = (dev: Developer, pluginId: string, body: Record<string, unknown>) =>
    call("POST", `/developers/me/plugins/${pluginId}/versions`, {
      token: dev.token,
      body: { manifest: body, signature: signManifest(body, dev.privateKey) },
    });

  const submit = (dev: Developer, pluginId: string, version: string) =>
    call("POST", `/developers/me/plugins/${pluginId}/versions/${version}/submit`, { token: dev.token });

  const approve = async (pluginId: string, version: string) =>
    call("POST", `/admin/plugins/${pluginId}/versions/${version}/approve`, { token: await adminToken() });

  const expectStatus = (answer: Answer, status: number, what: string) => {
    if (answer.status !== status) throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer;
  };

  /** A plugin created, submitted and approved: live in the marketplace. Returns its id. */
  const publishLive = async (dev: Developer, body: Record<string, unknown> = manifest()): Promise<string> => {
    const created = expectStatus(await create(dev, body), 201, "create");
    const id = created.body.id as string;
    expectStatus(await submit(dev, id, body.version as string), 200, "submit");
    expectStatus(await approve(id, body.version as string), 200, "approve");
    return id;
  };

  /** A newer version of a live plugin, submitted and approved. */
  const releaseVersion = async (dev: Developer, pluginId: string, body: Record<string, unknown>) => {
    expectStatus(await addVersion(dev, pluginId, body), 201, "version");
    expectStatus(await submit(dev, pluginId, body.version as string), 200, "submit");
    return expectStatus(await approve(pluginId, body.version as string), 200, "approve");
  };

  const allGrants = { device_tools: ["task_list"], origins: ["https://api.weather.example"], data: ["profile"] };

  const install = (userToken: string, pluginId: string, grants: unknown = allGrants) =>
    call("POST", "/installs", { token: userToken, body: { plugin_id: pluginId, grants } });

  return {
    ctx,
    server,
    base,
    call,
    token,
    adminId,
    adminToken,
    developer,
    create,
    addVersion,
    submit,
    approve,
    publishLive,
    releaseVersion,
    install,
    allGrants,
  };
}

export type Plugins = Awaited<ReturnType<typeof startPlugins>>;

/** Asks for an export of the user's data, as auth does, and returns the plugins service's part of it once published. */
export async function exportPartOf(platform: Platform, userId: string): Promise<ExportPartEvent> {
  const exportId = crypto.randomUUID();
  await publishExportRequested(platform, { exportId, userId, requestedAt: Date.now() });
  const { redis, keys } = platform;
  const raw = await eventually(
    async () =>
      ((await redis?.xrange(keys.exportPartsStream, "-", "+")) ?? [])
        .map(([, fields]) => fields[1] as string)
        .find((entry) => entry.includes(exportId)),
    (entry) => entry !== undefined,
  );
  return ExportPartEvent.parse(JSON.parse(raw as string));
}
