// The manifest's rules, signature and canonical form, checked directly and against the JSON Schema
// the service serves: ajv (an independent JSON Schema validator) must accept and refuse what zod
// does, so a developer validating against the served schema meets no surprise when publishing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import {
  canonicalJson,
  checkManifestAddresses,
  manifestJsonSchema,
  type PluginManifest,
  parseManifest,
  verifyManifestSignature,
} from "../../src/plugins/manifest";
import { compareVersions, latestVersion } from "../../src/plugins/semver";
import type { HostResolver } from "../../src/shared/network-address";
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

/** The failing paths with their messages. */
const messagesOf = (value: unknown): Array<{ path: string; message: string }> => {
  try {
    parseManifest(value, test_);
    return [];
  } catch (error) {
    return (error as { details: Array<{ path: string; message: string }> }).details;
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
  [
    "a price below Stripe's 50-cent minimum",
    withField("pricing", { model: "one_off", amount: 49, currency: "eur" }),
    "pricing.amount",
  ],
  [
    "a monthly price of 49 cents",
    withField("pricing", { model: "monthly", amount: 49, currency: "usd" }),
    "pricing.amount",
  ],
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

  test("a tool name must fit the agent's 64 characters with its slug: slug + 2 + name ≤ 64", () => {
    const slug40 = "s".repeat(40);
    const withTools = (slug: string, ...names: string[]) => ({
      ...manifest({ slug }),
      tools: names.map((name) => ({ name, description: "x" })),
    });
    // 40 + 2 + 22 = 64: the longest name a 40-character slug allows, offered as is.
    expect(failingPaths(withTools(slug40, "t".repeat(22)))).toEqual([]);
    // 40 + 2 + 48 = 90: a name the schema alone allows, which the agent could never offer.
    const tooLong = withTools(slug40, "ok", "t".repeat(48), "t".repeat(23));
    expect(failingPaths(tooLong)).toEqual(["tools.1.name", "tools.2.name"]);
    const message = messagesOf(tooLong).find((each) => each.path === "tools.1.name")?.message;
    expect(message).toContain("slug + 2 + name ≤ 64");
    expect(message).toContain("at most 22 characters");
    // A three-letter slug leaves room for the schema's longest name: 3 + 2 + 48 = 53.
    expect(failingPaths(withTools("abc", "t".repeat(48)))).toEqual([]);
    // The JSON Schema cannot join two fields: the service checks this beyond it.
    expect(validateTest(tooLong)).toBe(true);
  });

  test("tool names are distinct: each repeat is named at its own path", () => {
    const repeated = {
      ...manifest(),
      tools: [
        { name: "forecast", description: "a" },
        { name: "alerts", description: "b" },
        { name: "forecast", description: "another description" },
        { name: "alerts", description: "b" },
      ],
    };
    expect(failingPaths(repeated)).toEqual(["tools.2.name", "tools.3.name"]);
    expect(messagesOf(repeated).map((each) => each.message)).toEqual([
      "repeats tools.0.name (forecast): tool names must be distinct",
      "repeats tools.1.name (alerts): tool names must be distinct",
    ]);
  });

  test("a paid price is at least Stripe's minimum charge in its currency", () => {
    const priced = (amount: number, currency: string) => withField("pricing", { model: "one_off", amount, currency });
    for (const [amount, currency] of [
      [50, "eur"],
      [50, "usd"],
      [50, "gbp"],
      [50, "jpy"],
      [200, "pln"],
      [17_500, "huf"],
    ] as const) {
      expect({ amount, currency, paths: failingPaths(priced(amount, currency)) }).toEqual({
        amount,
        currency,
        paths: [],
      });
    }
    for (const [amount, currency, least] of [
      [49, "jpy", 50],
      [199, "pln", 200],
      [399, "hkd", 400],
      [17_499, "huf", 17_500],
      [1499, "czk", 1500],
    ] as const) {
      const value = priced(amount, currency);
      expect(failingPaths(value)).toEqual(["pricing.amount"]);
      expect(messagesOf(value)[0]?.message).toContain(
        least === 50 ? "at least 50" : `at least ${least} in ${currency}`,
      );
    }
    // Free plugins have no price to check.
    expect(failingPaths(withField("pricing", { model: "free" }))).toEqual([]);
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

/** A resolver answering from a table (a name not in it does not resolve), recording what it was asked. */
function resolverOf(table: Record<string, string[]>): HostResolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve: HostResolver = async (hostname) => {
    asked.push(hostname);
    const answer = table[hostname];
    if (answer === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    }
    return answer;
  };
  return Object.assign(resolve, { asked });
}

const NAMES = {
  "mcp.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  "cdn.example.com": ["93.184.216.35"],
  // Public names pointed inside: what only resolving reveals.
  "rebound.example.com": ["127.0.0.1"],
  "metadata.example.com": ["169.254.169.254"],
  "half.example.com": ["93.184.216.34", "fd12:3456::1"],
  "cdn.rebound.example.com": ["10.1.2.3"],
};

const remoteAt = (endpoint: string) => parseManifest(manifest({ endpoint }), production) as PluginManifest;
const localAt = (url: string) =>
  parseManifest(
    { ...manifest({ local: true }), runtime: { type: "local", package: { url, sha256: "a".repeat(64) } } },
    production,
  ) as PluginManifest;

/** The error checkManifestAddresses throws, as code, status and failing paths; undefined when it accepts. */
async function addressRefusal(value: PluginManifest, resolve: HostResolver) {
  try {
    await checkManifestAddresses(value, resolve);
    return undefined;
  } catch (error) {
    const { code, status, details } = error as { code: string; status: number; details?: Array<{ path: string }> };
    return { code, status, paths: details?.map((each) => each.path) };
  }
}

describe("where a production manifest's endpoint and package lead", () => {
  const refused = (path: string) => ({ code: "invalid_manifest", status: 422, paths: [path] });

  test("a literal loopback, private, link-local, CGNAT, unspecified, multicast or IPv4-mapped host is refused", async () => {
    const resolve = resolverOf(NAMES);
    for (const host of [
      "127.0.0.1",
      "10.0.0.5",
      "172.20.1.1",
      "192.168.1.2",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.251",
      "[::1]",
      "[::]",
      "[fd00::1]",
      "[fe80::1]",
      "[ff02::1]",
      "[::ffff:169.254.169.254]",
      "[::ffff:7f00:1]",
    ]) {
      expect({ host, refusal: await addressRefusal(remoteAt(`https://${host}/mcp`), resolve) }).toEqual({
        host,
        refusal: refused("runtime.endpoint"),
      });
    }
    expect(resolve.asked).toEqual([]);
  });

  test("localhost and names internal to a network are refused by name", async () => {
    const resolve = resolverOf(NAMES);
    for (const host of ["localhost", "mcp.localhost", "metadata.google.internal", "printer.local"]) {
      expect(await addressRefusal(remoteAt(`https://${host}/mcp`), resolve)).toEqual(refused("runtime.endpoint"));
    }
    expect(await addressRefusal(localAt("https://files.internal/p.tgz"), resolve)).toEqual(
      refused("runtime.package.url"),
    );
    expect(resolve.asked).toEqual([]);
  });

  test("a name is resolved (A and AAAA): one answer inside a network is enough to refuse it", async () => {
    const resolve = resolverOf(NAMES);
    expect(await addressRefusal(remoteAt("https://mcp.example.com/mcp"), resolve)).toBeUndefined();
    expect(await addressRefusal(localAt("https://cdn.example.com/p.tgz"), resolve)).toBeUndefined();
    for (const host of ["rebound.example.com", "metadata.example.com", "half.example.com"]) {
      expect(await addressRefusal(remoteAt(`https://${host}/mcp`), resolve)).toEqual(refused("runtime.endpoint"));
    }
    expect(await addressRefusal(localAt("https://cdn.rebound.example.com/p.tgz"), resolve)).toEqual(
      refused("runtime.package.url"),
    );
    expect(resolve.asked).toContain("rebound.example.com");
    const error = await checkManifestAddresses(remoteAt("https://rebound.example.com/mcp"), resolve).then(
      () => undefined,
      (thrown: { details: Array<{ message: string }> }) => thrown,
    );
    expect(error?.details[0]?.message).toContain("rebound.example.com resolves to 127.0.0.1");
  });

  test("a public literal address is not resolved and passes", async () => {
    const resolve = resolverOf({});
    expect(await addressRefusal(remoteAt("https://93.184.216.34/mcp"), resolve)).toBeUndefined();
    expect(await addressRefusal(remoteAt("https://[2606:4700:4700::1111]/mcp"), resolve)).toBeUndefined();
    expect(resolve.asked).toEqual([]);
  });

  test("a name that does not resolve is refused; a resolver that fails is 503, try again", async () => {
    expect(await addressRefusal(remoteAt("https://nowhere.example.com/mcp"), resolverOf(NAMES))).toEqual(
      refused("runtime.endpoint"),
    );
    const failing: HostResolver = async () => {
      throw Object.assign(new Error("queryA ESERVFAIL mcp.example.com"), { code: "ESERVFAIL" });
    };
    expect(await addressRefusal(remoteAt("https://mcp.example.com/mcp"), failing)).toEqual({
      code: "address_check_unavailable",
      status: 503,
      paths: undefined,
    });
  });
});

describe("publishing on a service that checks endpoints as production does", () => {
  let strict: Plugins;
  let lenient: Plugins;
  const resolve = resolverOf(NAMES);
  beforeAll(async () => {
    strict = await startPlugins({}, { strictEndpoints: true, resolveHost: resolve });
    lenient = await startPlugins();
  });
  afterAll(async () => {
    await strict.ctx.close();
    await lenient.ctx.close();
  });

  const failure = (answer: {
    status: number;
    body: { error?: { code: string; details?: Array<{ path: string }> } };
  }) => ({
    status: answer.status,
    code: answer.body.error?.code,
    paths: answer.body.error?.details?.map((each) => each.path),
  });

  test("an endpoint or package that leads inside a network is 422 invalid_manifest naming its path", async () => {
    const developer = await strict.developer();
    for (const endpoint of [
      "https://10.0.0.1/mcp",
      "https://[::ffff:169.254.169.254]/mcp",
      "https://rebound.example.com/mcp",
      "https://localhost/mcp",
    ]) {
      expect({ endpoint, ...failure(await strict.create(developer, manifest({ endpoint }))) }).toEqual({
        endpoint,
        status: 422,
        code: "invalid_manifest",
        paths: ["runtime.endpoint"],
      });
    }
    const local = {
      ...manifest({ local: true }),
      runtime: { type: "local", package: { url: "https://cdn.rebound.example.com/p.tgz", sha256: "a".repeat(64) } },
    };
    expect(failure(await strict.create(developer, local))).toEqual({
      status: 422,
      code: "invalid_manifest",
      paths: ["runtime.package.url"],
    });
    // Plain http is refused by the schema itself in production.
    expect(failure(await strict.create(developer, manifest({ endpoint: "http://mcp.example.com/mcp" })))).toEqual({
      status: 422,
      code: "invalid_manifest",
      paths: ["runtime.endpoint"],
    });
  });

  test("a public endpoint is published, and a new version pointed inside the network is refused", async () => {
    const developer = await strict.developer();
    const first = manifest({ endpoint: "https://mcp.example.com/mcp" });
    const created = await strict.create(developer, first);
    expect(created.status).toBe(201);
    const next = manifest({
      slug: first.slug as string,
      version: "1.1.0",
      endpoint: "https://metadata.example.com/mcp",
    });
    expect(failure(await strict.addVersion(developer, created.body.id, next))).toEqual({
      status: 422,
      code: "invalid_manifest",
      paths: ["runtime.endpoint"],
    });
  });

  test("a manifest whose signature fails is refused as such, and nothing is resolved for it", async () => {
    const developer = await strict.developer();
    const before = resolve.asked.length;
    const answer = await strict.call("POST", "/developers/me/plugins", {
      token: developer.token,
      body: {
        manifest: manifest({ endpoint: "https://rebound.example.com/mcp" }),
        signature: signManifest(manifest(), keyPair().privateKey),
      },
    });
    expect(failure(answer)).toEqual({ status: 422, code: "invalid_signature", paths: undefined });
    expect(resolve.asked.length).toBe(before);
  });

  test("outside production the test servers on 127.0.0.1 publish as before", async () => {
    const developer = await lenient.developer();
    for (const endpoint of ["http://127.0.0.1:9/mcp", "https://10.0.0.1/mcp", "https://localhost/mcp"]) {
      expect({ endpoint, status: (await lenient.create(developer, manifest({ endpoint }))).status }).toEqual({
        endpoint,
        status: 201,
      });
    }
  });
});
