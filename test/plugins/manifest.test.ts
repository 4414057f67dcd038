// The manifest's rules, signature and canonical form, checked directly and against the JSON Schema
// the service serves: ajv (an independent JSON Schema validator) must accept and refuse what zod
// does, so a developer validating against the served schema meets no surprise when publishing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { canonicalJson, manifestJsonSchema, parseManifest, verifyManifestSignature } from "../../src/plugins/manifest";
import { compareVersions, latestVersion } from "../../src/plugins/semver";
import { keyPair, manifest, newUserId, type Plugins, signManifest, startPlugins } from "./harness";

const test_ = { allowHttpEndpoints: true };
const production = { allowHttpEndpoints: false };

/** The manifest with one field replaced (a dotted path), or removed with `undefined`. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(manifest({ slug: "weather" }));
  const keys = path.split(".");
  let node = copy as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

const failingPaths = (value: unknown, options = test_) => {
  try {
    parseManifest(value, options);
    return [];
  } catch (error) {
    const { code, status, details } = error as { code: string; status: number; details: Array<{ path: string }> };
    expect({ code, status }).toEqual({ code: "invalid_manifest", status: 422 });
    return details.map((each) => each.path);
  }
};

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
const validateTest = ajv.compile(manifestJsonSchema({ ...test_, id: "https://example.com/test.json" }));
const validateProduction = ajv.compile(
  manifestJsonSchema({ ...production, id: "https://example.com/production.json" }),
);

const BAD: Array<[string, Record<string, unknown>, string]> = [
  ["an unknown device tool", withField("permissions.deviceTools", ["task_list", "rm_rf"]), "permissions.deviceTools.1"],
  ["a device tool twice", withField("permissions.deviceTools", ["task_list", "task_list"]), "permissions.deviceTools"],
  ["an origin with a path", withField("permissions.origins", ["https://api.example.com/x"]), "permissions.origins.0"],
  ["a plain-http origin", withField("permissions.origins", ["http://api.example.com"]), "permissions.origins.0"],
  ["an unknown kind of data", withField("permissions.data", ["passwords"]), "permissions.data.0"],
  ["a slug with capitals", withField("slug", "Weather"), "slug"],
  ["a two-letter slug", withField("slug", "ab"), "slug"],
  ["a 41-letter slug", withField("slug", "a".repeat(41)), "slug"],
  ["a version that is not semver", withField("version", "1.0"), "version"],
  ["a version with a leading zero", withField("version", "01.0.0"), "version"],
  ["an icon over http", withField("icon", "http://cdn.example.com/i.png"), "icon"],
  ["no category", withField("categories", []), "categories"],
  ["an unknown category", withField("categories", ["gambling"]), "categories.0"],
  ["four categories", withField("categories", ["data", "other", "health", "finance"]), "categories"],
  ["a tool name with a space", withField("tools", [{ name: "get weather", description: "x" }]), "tools.0.name"],
  ["a 49-letter tool name", withField("tools", [{ name: "t".repeat(49), description: "x" }]), "tools.0.name"],
  ["no tools", withField("tools", []), "tools"],
  ["a paid plugin without a currency", withField("pricing", { model: "monthly", amount: 500 }), "pricing.currency"],
  ["a price of zero", withField("pricing", { model: "one_off", amount: 0, currency: "eur" }), "pricing.amount"],
  ["an unknown pricing model", withField("pricing", { model: "freemium" }), "pricing.model"],
  ["an unknown tier", withField("tiers", ["gold"]), "tiers.0"],
  ["no tier", withField("tiers", []), "tiers"],
  [
    "a package digest in capitals",
    withField("runtime", { type: "local", package: { url: "https://x.example/p.tgz", sha256: "A".repeat(64) } }),
    "runtime.package.sha256",
  ],
  ["a runtime of both kinds", withField("runtime.package", { url: "https://x.example/p", sha256: "a".repeat(64) }), ""],
  ["a field nobody knows", withField("homepage", "https://example.com"), ""],
  ["a missing name", withField("name", undefined), "name"],
  ["a name over two lines", withField("name", "Weather\nnow"), "name"],
  ["a timeout past two minutes", withField("limits", { timeoutMs: 600_000 }), "limits.timeoutMs"],
];

describe("the manifest schema", () => {
  test("a valid manifest passes zod and the served JSON Schema, remote and local, free and paid", () => {
    const valid = [
      manifest(),
      manifest({ local: true }),
      manifest({ pricing: { model: "monthly", amount: 499, currency: "eur" }, tiers: ["pro"] }),
      manifest({ deviceTools: [], origins: [], data: [], limits: { callsPerMinute: 5, timeoutMs: 2000 } }),
      manifest({ version: "2.0.0-rc.1+build.5", changelog: "" }),
    ];
    for (const each of valid) {
      expect(failingPaths(each)).toEqual([]);
      expect({ valid: validateTest(each), errors: validateTest.errors }).toEqual({ valid: true, errors: null });
    }
  });

  for (const [name, value, path] of BAD) {
    test(`refuses ${name}, naming ${path || "the manifest"}, and so does the JSON Schema`, () => {
      const paths = failingPaths(value);
      expect(paths.length).toBeGreaterThan(0);
      if (path) expect(paths).toContain(path);
      expect(validateTest(value)).toBe(false);
    });
  }

  test("in production a remote endpoint must be https; outside production plain http is allowed", () => {
    const http = manifest({ endpoint: "http://127.0.0.1:8080/mcp" });
    expect(failingPaths(http, test_)).toEqual([]);
    expect(validateTest(http)).toBe(true);
    expect(failingPaths(http, production)).toEqual(["runtime.endpoint"]);
    expect(validateProduction(http)).toBe(false);
    expect(validateProduction(manifest())).toBe(true);
  });

  test("a valid manifest parses to itself: nothing added, nothing changed", () => {
    const value = manifest({ limits: { timeoutMs: 5000 } });
    expect(parseManifest(value, test_)).toEqual(value as never);
  });
});

describe("canonical JSON and the signature", () => {
  test("keys sorted at every depth by UTF-16 code units, arrays kept in order, no whitespace", () => {
    expect(canonicalJson({ b: 1, a: [2, "x", { d: true, c: null }] })).toBe('{"a":[2,"x",{"c":null,"d":true}],"b":1}');
    expect(canonicalJson({ é: 1, z: 2, Z: 3, "\u0000": 4 })).toBe('{"\\u0000":4,"Z":3,"z":2,"é":1}');
    expect(canonicalJson('line\nbreak "quoted"')).toBe('"line\\nbreak \\"quoted\\""');
  });

  test("the signature verifies for the manifest in any key order, and for nothing else", () => {
    const keys = keyPair();
    const value = manifest();
    const signature = signManifest(value, keys.privateKey);
    const reordered = Object.fromEntries(Object.entries(value).reverse());
    expect(verifyManifestSignature(keys.publicKey, reordered, signature)).toBe(true);
    expect(verifyManifestSignature(keys.publicKey, { ...value, version: "1.0.1" }, signature)).toBe(false);
    expect(verifyManifestSignature(keyPair().publicKey, value, signature)).toBe(false);
    expect(verifyManifestSignature(keys.publicKey, value, "not base64")).toBe(false);
    expect(verifyManifestSignature(keys.publicKey, value, signature.replace(/==$/, ""))).toBe(false);
    expect(verifyManifestSignature("AAAA", value, signature)).toBe(false);
  });
});

describe("semantic versions", () => {
  test("precedence as semver.org orders it; build metadata does not count", () => {
    const ordered = [
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
      "1.0.1",
      "1.10.0",
      "2.0.0",
      "9007199254740993.0.0",
    ];
    for (let i = 0; i < ordered.length - 1; i++) {
      expect(compareVersions(ordered[i] as string, ordered[i + 1] as string)).toBe(-1);
      expect(compareVersions(ordered[i + 1] as string, ordered[i] as string)).toBe(1);
    }
    expect(compareVersions("1.0.0+build.1", "1.0.0")).toBe(0);
    expect(compareVersions("9007199254740993.0.0", "9007199254740992.0.0")).toBe(1);
    expect(latestVersion(["1.2.0", "1.10.0", "1.9.9"])).toBe("1.10.0");
    expect(latestVersion([])).toBeUndefined();
  });
});

describe("GET /manifest-schema", () => {
  let p: Plugins;
  beforeAll(async () => {
    p = await startPlugins();
  });
  afterAll(() => p.ctx.close());

  test("serves the JSON Schema this deployment enforces, identified by its URL; needs a token", async () => {
    const answer = await p.call("GET", "/manifest-schema", { token: await p.token(newUserId()) });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      $id: "http://localhost:8000/api/v1/plugins/manifest-schema",
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      additionalProperties: false,
    });
    const served = new Ajv2020({ strict: false });
    addFormats(served);
    const validate = served.compile(answer.body);
    expect(validate(manifest())).toBe(true);
    expect(validate(withField("permissions.deviceTools", ["rm_rf"]))).toBe(false);
    const anonymous = await p.call("GET", "/manifest-schema");
    expect({ status: anonymous.status, code: anonymous.body.error.code }).toEqual({
      status: 401,
      code: "unauthorized",
    });
  });
});
