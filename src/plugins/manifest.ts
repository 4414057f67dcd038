import { createPublicKey, verify } from "node:crypto";
import { z } from "zod";
import { DEVICE_TOOL_NAMES } from "../shared/device-tools";
import { issueDetails, ServiceError } from "../shared/errors";
import { checkHost, type HostResolver, systemResolver } from "../shared/network-address";
import { TIERS } from "../shared/tiers";
import { SEMVER } from "./semver";

/** The shelves of the marketplace; a plugin sits on one to three. */
export const PLUGIN_CATEGORIES = [
  "productivity",
  "writing",
  "research",
  "communication",
  "developer-tools",
  "finance",
  "education",
  "health",
  "lifestyle",
  "data",
  "other",
] as const;
export const PluginCategory = z.enum(PLUGIN_CATEGORIES);
export type PluginCategory = z.infer<typeof PluginCategory>;

/** Kinds of the user's data a plugin may ask to read. */
export const DATA_KINDS = ["profile", "documents", "chats", "memories"] as const;
export const DataKind = z.enum(DATA_KINDS);

export const SLUG = /^[a-z0-9-]{3,40}$/;
export const TOOL_NAME = /^[a-zA-Z0-9_-]{1,48}$/;
/**
 * The chat agent offers a tool as `<slug>__<tool>`, and a model takes only names of at most 64
 * characters (`^[a-zA-Z0-9_-]{1,64}$`): slug + 2 + tool name must fit, or the tool could never be offered.
 */
export const MAX_OFFERED_TOOL_NAME = 64;
/** `https://host[:port]`, lowercase, nothing after: what a network permission names. */
export const ORIGIN =
  /^https:\/\/(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?::\d{1,5})?$/;

/** A list whose entries must differ: checked here, and written as `uniqueItems` into the JSON Schema. */
const distinct = <T extends z.ZodType>(item: T, max: number, min = 0) =>
  z
    .array(item)
    .min(min)
    .max(max)
    .refine((values) => new Set(values.map((value) => JSON.stringify(value))).size === values.length, {
      message: "entries must be distinct",
    })
    .meta({ uniqueItems: true });

const parsesAsUrl = (value: string) => URL.canParse(value);

/** An absolute URL of the given schemes; the pattern says it in the JSON Schema too. */
function webUrl(schemes: "https" | "http(s)") {
  const pattern = schemes === "https" ? /^https:\/\/[^\s/?#]+\S*$/ : /^https?:\/\/[^\s/?#]+\S*$/;
  return z
    .string()
    .max(2048)
    .regex(pattern, schemes === "https" ? "must be an https:// URL" : "must be an http(s):// URL")
    .refine(parsesAsUrl, { message: "must be a valid URL" })
    .meta({ format: "uri" });
}

/**
 * The least a paid plugin may cost, in minor units: Stripe charges nothing below 50 cents (USD, EUR
 * and the other currencies whose minimum is 0.50), and any currency's charge must come to at least
 * that much in the platform's own. Lower prices would be published and then fail at every checkout.
 */
export const MIN_PRICE = 50;

/**
 * Stripe's minimum charge where it is higher than MIN_PRICE, in the currency's minor unit as
 * Stripe's API counts it (its table of minimum charge amounts: 2.00 AED is 200, 175.00 HUF 17500).
 */
const STRIPE_MINIMUM_CHARGE: Readonly<Record<string, number>> = {
  aed: 200,
  bgn: 100,
  czk: 1500,
  dkk: 250,
  hkd: 400,
  huf: 17500,
  mxn: 1000,
  myr: 200,
  nok: 300,
  pln: 200,
  ron: 200,
  sek: 300,
  thb: 1000,
};

/** The least a price in `currency` may be, in its minor unit. */
export const minimumPrice = (currency: string): number =>
  Object.hasOwn(STRIPE_MINIMUM_CHARGE, currency) ? (STRIPE_MINIMUM_CHARGE[currency] as number) : MIN_PRICE;

const Money = {
  /** In the currency's minor unit (cents), as payment providers count; see `minimumPrice` per currency. */
  amount: z
    .number()
    .int()
    .min(MIN_PRICE, `must be at least ${MIN_PRICE} (minor units): the least Stripe charges`)
    .max(1_000_000),
  /** ISO 4217, lowercase (`eur`, `usd`). */
  currency: z.string().regex(/^[a-z]{3}$/, "must be a lowercase ISO 4217 code such as eur"),
};

export interface ManifestSchemaOptions {
  /**
   * Outside production a remote endpoint may be plain http (a test server on 127.0.0.1); in
   * production it must be https.
   */
  allowHttpEndpoints: boolean;
}

/**
 * The plugin manifest, version 1: what a developer signs and publishes, one per version. Defined
 * once here; the JSON Schema served at `GET /manifest-schema` is derived from it (`z.toJSONSchema`).
 * No defaults and no transforms: a valid manifest parses to itself, so the signature is checked
 * over exactly what was sent.
 */
export function manifestSchema(options: ManifestSchemaOptions) {
  const Tool = z.strictObject({
    name: z.string().regex(TOOL_NAME, "must be 1-48 letters, digits, _ or -"),
    description: z.string().min(1).max(1000),
  });
  const Runtime = z.discriminatedUnion("type", [
    z
      .strictObject({
        type: z.literal("remote"),
        /** The MCP server, reached over streamable HTTP by the chat service. */
        endpoint: webUrl(options.allowHttpEndpoints ? "http(s)" : "https"),
        transport: z.literal("streamable-http"),
      })
      .meta({ description: "An MCP server the chat service calls (streamable HTTP)" }),
    z
      .strictObject({
        type: z.literal("local"),
        /** What the desktop app downloads and runs; it checks the digest before running it. */
        package: z.strictObject({
          url: webUrl("https"),
          sha256: z.string().regex(/^[0-9a-f]{64}$/, "must be the lowercase hex SHA-256 of the package"),
        }),
      })
      .meta({ description: "A package the desktop app runs itself" }),
  ]);
  const Pricing = z.discriminatedUnion("model", [
    z.strictObject({ model: z.literal("free") }),
    z.strictObject({ model: z.literal("one_off"), ...Money }),
    z.strictObject({ model: z.literal("monthly"), ...Money }),
  ]);
  return z
    .strictObject({
      manifestVersion: z.literal(1),
      name: z
        .string()
        .min(1)
        .max(60)
        .regex(/^\S(?:.*\S)?$/, "one line, not starting or ending with whitespace"),
      slug: z.string().regex(SLUG, "must be 3-40 characters of a-z, 0-9 and -"),
      description: z.string().min(1).max(2000),
      icon: webUrl("https"),
      categories: distinct(PluginCategory, 3, 1),
      publisher: z.strictObject({ name: z.string().min(1).max(100), url: webUrl("https").optional() }),
      version: z.string().max(64).regex(SEMVER, "must be a semantic version such as 1.2.0"),
      changelog: z.string().max(5000),
      runtime: Runtime,
      tools: z.array(Tool).min(1).max(64).superRefine(distinctToolNames),
      permissions: z.strictObject({
        /** Device tools (docs/device-tools.md) the plugin may have the app call on the user's device. */
        deviceTools: distinct(z.enum(DEVICE_TOOL_NAMES as [string, ...string[]]), DEVICE_TOOL_NAMES.length),
        /** Network origins the plugin may reach, `https://host[:port]`. */
        origins: distinct(z.string().regex(ORIGIN, "must be an origin such as https://api.example.com"), 20),
        /** Kinds of the user's data the plugin may read. */
        data: distinct(DataKind, DATA_KINDS.length),
      }),
      pricing: Pricing,
      /** The tiers whose users may install it. */
      tiers: distinct(z.enum(TIERS), TIERS.length, 1),
      /** Per user: calls a minute and one call's deadline; unset, the deployment's defaults apply. */
      limits: z
        .strictObject({
          callsPerMinute: z.number().int().min(1).max(600).optional(),
          timeoutMs: z.number().int().min(1000).max(120_000).optional(),
        })
        .optional(),
    })
    .superRefine(acrossFields)
    .meta({ title: "Adiuva plugin manifest", description: "Signed by its developer; one per version" });
}

/** Each tool name once: a repeat is named at its own path, with the earlier one it repeats. */
function distinctToolNames(tools: ReadonlyArray<{ name: string }>, ctx: z.RefinementCtx): void {
  const first = new Map<string, number>();
  tools.forEach((tool, index) => {
    const earlier = first.get(tool.name);
    if (earlier === undefined) first.set(tool.name, index);
    else {
      ctx.addIssue({
        code: "custom",
        path: [index, "name"],
        message: `repeats tools.${earlier}.name (${tool.name}): tool names must be distinct`,
      });
    }
  });
}

/**
 * The rules that join two fields, which JSON Schema cannot say: each tool's name as the agent
 * offers it (slug + 2 + name ≤ 64), and a paid price at least Stripe's minimum in its currency.
 * Written defensively: they run even when another field is already wrong, to report everything at once.
 */
function acrossFields(value: unknown, ctx: z.RefinementCtx): void {
  const manifest = value as { slug?: unknown; tools?: unknown; pricing?: unknown };
  if (typeof manifest.slug === "string" && SLUG.test(manifest.slug) && Array.isArray(manifest.tools)) {
    const slug = manifest.slug;
    manifest.tools.forEach((tool: { name?: unknown }, index) => {
      if (typeof tool?.name !== "string") return;
      const offered = slug.length + 2 + tool.name.length;
      if (offered <= MAX_OFFERED_TOOL_NAME) return;
      ctx.addIssue({
        code: "custom",
        path: ["tools", index, "name"],
        message:
          `offered to the model as ${slug}__${tool.name}, ${offered} characters: the slug, two underscores ` +
          `and the tool name must fit in ${MAX_OFFERED_TOOL_NAME} (slug + 2 + name ≤ ${MAX_OFFERED_TOOL_NAME}), ` +
          `so this name may have at most ${MAX_OFFERED_TOOL_NAME - 2 - slug.length} characters`,
      });
    });
  }
  const pricing = manifest.pricing as { amount?: unknown; currency?: unknown } | undefined;
  if (typeof pricing?.amount === "number" && typeof pricing.currency === "string") {
    const least = minimumPrice(pricing.currency);
    if (pricing.amount >= MIN_PRICE && pricing.amount < least) {
      ctx.addIssue({
        code: "custom",
        path: ["pricing", "amount"],
        message: `must be at least ${least} in ${pricing.currency} (minor units): the least Stripe charges in it`,
      });
    }
  }
}

export type PluginManifest = z.infer<ReturnType<typeof manifestSchema>>;
export type PluginPermissions = PluginManifest["permissions"];

/** The JSON Schema (draft 2020-12) of the manifest as this deployment accepts it, identified by where it is served. */
export function manifestJsonSchema(options: ManifestSchemaOptions & { id: string }): Record<string, unknown> {
  const schema = z.toJSONSchema(manifestSchema(options), { io: "input", unrepresentable: "any" });
  return { $id: options.id, ...(schema as Record<string, unknown>) };
}

export const invalidManifest = (details: unknown) =>
  new ServiceError("invalid_manifest", 422, "the manifest does not match the manifest schema", {}, details);

/** The manifest checked against the schema: 422 `invalid_manifest` naming each failing path. */
export function parseManifest(value: unknown, options: ManifestSchemaOptions): PluginManifest {
  const parsed = manifestSchema(options).safeParse(value);
  if (!parsed.success) throw invalidManifest(issueDetails(parsed.error.issues));
  return parsed.data;
}

/** The URLs of a manifest that something of ours fetches: the chat service its endpoint, the app its package. */
function fetchedUrls(manifest: PluginManifest): Array<{ path: string; url: string }> {
  return manifest.runtime.type === "remote"
    ? [{ path: "runtime.endpoint", url: manifest.runtime.endpoint }]
    : [{ path: "runtime.package.url", url: manifest.runtime.package.url }];
}

/**
 * In production, where a manifest's endpoint (or local package) may lead: not into a network. Its
 * host must not be a loopback, private, link-local, unique-local, carrier-grade NAT, unspecified or
 * multicast address (IPv4, IPv6, IPv4 written as IPv6), nor `localhost`, `*.localhost`,
 * `*.internal`, `*.local`; a name must resolve (A and AAAA), and to public addresses only. Refused:
 * 422 `invalid_manifest` naming the path. A resolver that failed (timeout, server failure) says
 * nothing of the manifest: 503 `address_check_unavailable`, try again. The chat service checks
 * again before each connection, since a name may be pointed elsewhere after publishing.
 */
export async function checkManifestAddresses(
  manifest: PluginManifest,
  resolve: HostResolver = systemResolver,
): Promise<void> {
  const details: Array<{ path: string; message: string }> = [];
  for (const { path, url } of fetchedUrls(manifest)) {
    const host = new URL(url).hostname;
    const verdict = await checkHost(host, resolve);
    if (verdict.kind === "private") {
      details.push({
        path,
        message: verdict.address
          ? `${host} resolves to ${verdict.address}, a loopback, private or otherwise non-public address`
          : `${host} is a loopback, private or otherwise non-public address, or a name internal to a network`,
      });
    } else if (verdict.kind === "unresolved" && !verdict.transient) {
      details.push({
        path,
        message: `${host} does not resolve (no A or AAAA record): publish once its DNS is in place`,
      });
    } else if (verdict.kind === "unresolved") {
      throw new ServiceError(
        "address_check_unavailable",
        503,
        `the address of ${host} could not be checked now (${verdict.reason}); try again shortly`,
        { "retry-after": "5" },
      );
    }
  }
  if (details.length > 0) throw invalidManifest(details);
}

/**
 * The bytes a developer signs: the manifest as canonical JSON (RFC 8785, JCS). For a manifest,
 * which holds only strings, integers, booleans, arrays and objects, that is: object keys sorted by
 * their UTF-16 code units, no whitespace anywhere, strings escaped as JSON.stringify escapes them,
 * then UTF-8. `{"b":1,"a":[2,"x"]}` signs as `{"a":[2,"x"],"b":1}`.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, each]) => each !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, each]) => `${JSON.stringify(key)}:${canonicalJson(each)}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error("not representable in JSON");
  return JSON.stringify(value);
}

/** Standard base64 with padding, of exactly `bytes` bytes. */
function base64Of(bytes: number): RegExp {
  const chars = Math.ceil(bytes / 3) * 4;
  const padding = (3 - (bytes % 3)) % 3;
  return new RegExp(`^[A-Za-z0-9+/]{${chars - padding}}${"=".repeat(padding)}$`);
}

/** An Ed25519 public key: base64 of its 32 raw bytes (RFC 8032), as `crypto_sign_keypair` makes it. */
export const ED25519_PUBLIC_KEY = base64Of(32);
/** An Ed25519 signature: base64 of its 64 bytes. */
export const ED25519_SIGNATURE = base64Of(64);

/** True when `signature` is the key's Ed25519 signature of the manifest's canonical JSON. */
export function verifyManifestSignature(publicKey: string, manifest: unknown, signature: string): boolean {
  if (!ED25519_PUBLIC_KEY.test(publicKey) || !ED25519_SIGNATURE.test(signature)) return false;
  try {
    const key = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey, "base64").toString("base64url") },
      format: "jwk",
    });
    return verify(null, Buffer.from(canonicalJson(manifest), "utf8"), key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}
