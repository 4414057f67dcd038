// Strategy: the edge (Traefik, Compose, the firewall script) cannot run here, so its files are read
// and each property the deploy depends on is checked against the code it protects: the auth
// service, started on a real test platform, says which path spellings it answers; env.ts and the
// tier table give the longest chat turn and the drain timings. The firewall script runs with
// stand-ins for iptables, ip6tables and ip on PATH that record their arguments. The range refresh
// script runs on a copy of the infra files, reading Cloudflare's lists from local files.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { parse } from "yaml";
import { createAuthService } from "../../src/auth";
import { Env } from "../../src/shared/env";
import { createTestContext } from "../../src/shared/testing";
import { TIER_LIMITS } from "../../src/shared/tiers";
import { pathMatchers, routersOf } from "./compose-check";

interface ComposeService {
  image?: string;
  build?: unknown;
  pull_policy?: string;
  command?: string[];
  volumes?: string[];
  labels?: string[];
  environment?: Record<string, string>;
  stop_grace_period?: string;
  profiles?: string[];
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}
interface RateLimit {
  sourceCriterion?: { requestHeaderName?: string; ipStrategy?: { depth?: number; excludedIPs?: string[] } };
}
interface EntryPoint {
  transport?: { respondingTimeouts?: Record<string, string | number> };
  forwardedHeaders?: { trustedIPs?: string[]; insecure?: boolean };
  http?: { middlewares?: string[] };
}

const readYaml = <T>(path: string): T => parse(readFileSync(path, "utf8"), { merge: true }) as T;
const compose = readYaml<ComposeFile>("compose.yaml");
const traefik = readYaml<{
  entryPoints: Record<string, EntryPoint>;
  serversTransport?: { forwardingTimeouts?: Record<string, string | number> };
}>("infra/traefik/traefik.yml");
const middlewares = readYaml<{
  http: { middlewares: Record<string, { rateLimit?: RateLimit; retry?: { attempts: number } }> };
}>("infra/traefik/dynamic/middlewares.yml").http.middlewares;
const appServices = Object.entries(compose.services).filter(([, service]) => service.environment?.SERVICE_NAME);
// The migration profile's catch-all towards the monolith is checked in migration-profile.test.ts.
const routers = Object.values(compose.services)
  .filter((service) => !service.profiles?.includes("migration"))
  .flatMap((service) => routersOf(service.labels));
const ctx = await createTestContext();
afterAll(() => ctx.close());
const auth = await ctx.start([createAuthService], { service: "auth" });

/** A Traefik duration: a Go duration string, or bare digits meaning seconds. */
function durationMs(value: string | number | undefined): number {
  if (value === undefined) return Number.NaN;
  if (typeof value === "number" || /^\d+$/.test(value)) return Number(value) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const rest = value.replace(/(\d+(?:\.\d+)?)(ms|s|m|h)/g, (_, amount: string, unit: string) => {
    total += Number(amount) * (units[unit] as number);
    return "";
  });
  return rest === "" ? total : Number.NaN;
}

/** An image's exact version (`v3.6.24` → [3, 6, 24]); undefined for a floating tag. */
function exactVersion(image: string | undefined): number[] | undefined {
  const match = /:v?(\d+)\.(\d+)\.(\d+)$/.exec(image ?? "");
  return match ? match.slice(1).map(Number) : undefined;
}
const atLeast = (version: number[] | undefined, minimum: number[]) => {
  if (!version) return false;
  for (const [index, part] of minimum.entries()) {
    const have = version[index] as number;
    if (have !== part) return have > part;
  }
  return true;
};

/** Traefik v3's verdict for a rule made of `Path`/`PathPrefix` matchers joined by `||`. */
function matches(rule: string, path: string): boolean {
  return rule.split("||").some((term) => {
    const [matcher] = pathMatchers(term);
    if (!matcher || pathMatchers(term).length !== 1 || term.includes("&&")) {
      throw new Error(`rule not understood by this check: ${rule}`);
    }
    return matcher.kind === "Path" ? path === matcher.path : path.startsWith(matcher.path);
  });
}
/** The router Traefik picks for a path: the highest priority, which defaults to the rule's length. */
function routerFor(path: string) {
  const candidates = routers.filter((router) => matches(router.rule, path));
  return candidates.sort((a, b) => priorityOf(b) - priorityOf(a))[0];
}
const priorityOf = (router: { rule: string; priority?: string }) =>
  router.priority ? Number(router.priority) : router.rule.length;

describe("Docker Engine 29", () => {
  test("Traefik is pinned to an exact version that negotiates the Docker API (3.6.1 or later)", () => {
    const version = exactVersion(compose.services.traefik?.image);
    expect({ image: compose.services.traefik?.image, negotiates: atLeast(version, [3, 6, 1]) }).toEqual({
      image: expect.stringMatching(/^traefik:v\d+\.\d+\.\d+$/),
      negotiates: true,
    });
  });

  test("Alloy is pinned to an exact version built on Docker's v29 client library (1.16.1 or later)", () => {
    const image = compose.services.alloy?.image;
    expect({ image, recent: atLeast(exactVersion(image), [1, 16, 1]) }).toEqual({
      image: expect.stringMatching(/^grafana\/alloy:v\d+\.\d+\.\d+$/),
      recent: true,
    });
  });
});

describe("long chat streams", () => {
  const websecure = traefik.entryPoints.websecure as EntryPoint;
  const timeouts = websecure.transport?.respondingTimeouts ?? {};
  // The longest turn the code allows: the largest tier's tool steps, each waiting up to the
  // default deadline for its device.
  const longestTurnMs =
    Math.max(...Object.values(TIER_LIMITS).map((tier) => tier.maxToolSteps)) *
    Env.shape.CHAT_TOOL_DEADLINE_MS.parse(undefined);

  test("the TLS entry point sets read, write and idle timeouts, read and write above the longest turn", () => {
    expect(longestTurnMs).toBeGreaterThan(60_000);
    expect({
      readTimeout: durationMs(timeouts.readTimeout) >= longestTurnMs,
      writeTimeout: durationMs(timeouts.writeTimeout) >= longestTurnMs,
      idleTimeout: durationMs(timeouts.idleTimeout) > 0,
    }).toEqual({ readTimeout: true, writeTimeout: true, idleTimeout: true });
  });

  test("idle client connections outlive Cloudflare's 900 s; idle service connections end before Bun's 10 s", () => {
    expect(durationMs(timeouts.idleTimeout)).toBeGreaterThan(900_000);
    expect(durationMs(traefik.serversTransport?.forwardingTimeouts?.idleConnTimeout)).toBeLessThan(10_000);
  });

  test("an SSE keep-alive goes out well within Cloudflare's 120 s read timeout", () => {
    expect(Env.shape.CHAT_SSE_KEEPALIVE_MS.parse(undefined)).toBeLessThanOrEqual(30_000);
  });
});

describe("edge rate limits", () => {
  const limited = routers.filter((router) =>
    (router.middlewares ?? "").split(",").some((name) => middlewares[name.replace(/@file$/, "")]?.rateLimit),
  );

  test("every rate limit keys on the address Cloudflare appended, never on a header the client can write", () => {
    expect(limited.length).toBeGreaterThan(0);
    const entryPoint = traefik.entryPoints.websecure as EntryPoint;
    expect(entryPoint.forwardedHeaders?.insecure).toBeUndefined();
    expect(entryPoint.forwardedHeaders?.trustedIPs?.length).toBeGreaterThan(0);
    for (const [name, { rateLimit }] of Object.entries(middlewares)) {
      if (!rateLimit) continue;
      expect({ name, sourceCriterion: rateLimit.sourceCriterion }).toEqual({
        name,
        sourceCriterion: { ipStrategy: expect.objectContaining({ depth: 1 }) },
      });
    }
  });

  // The service answers the path (so the rule names a real route) and refuses it with a trailing
  // slash today; the limit must not rest on that: a router change or an upgrade that starts
  // answering `/login/` would otherwise open a way around it.
  for (const route of ["login", "register", "refresh"]) {
    test(`/api/v1/auth/${route}, with or without a trailing slash, goes through an edge limit`, async () => {
      const path = `/api/v1/auth/${route}`;
      const response = await fetch(`${auth.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      await response.body?.cancel();
      expect(response.status).not.toBe(404);
      for (const spelling of [path, `${path}/`]) {
        const router = routerFor(spelling);
        expect({ spelling, limited: limited.includes(router as (typeof limited)[number]) }).toEqual({
          spelling,
          limited: true,
        });
      }
    });
  }

  test("the billing pages router takes /billing and /billing/…, and leaves the billing API and /billingx alone", () => {
    for (const path of ["/billing", "/billing/", "/billing/success", "/billing/assets/pages.css", "/billing/a/b"]) {
      expect({ path, router: routerFor(path)?.name }).toEqual({ path, router: "billing-pages" });
    }
    expect(routerFor("/billingx")).toBeUndefined();
    expect(routerFor("/api/v1/billing/checkout")?.name).toBe("billing");
  });

  test("the account pages router takes /account and /account/… to auth, and leaves the auth API and /accountx alone", () => {
    for (const path of ["/account", "/account/", "/account/reset", "/account/verify", "/account/assets/pages.js"]) {
      expect({ path, router: routerFor(path)?.name }).toEqual({ path, router: "account-pages" });
    }
    expect(routerFor("/accountx")).toBeUndefined();
    expect(routerFor("/api/v1/auth/password/reset")?.name).toBe("auth");
    expect(routerFor("/account/reset")?.service).toBe("auth");
  });

  // The reset and confirmation links carry their single-use token in the query, and Traefik's
  // access log records the query: the router that serves them writes no access log at all.
  test("the account pages router writes no Traefik access log; every other router does", () => {
    const accessLogs = (router: object) => (router as Record<string, string | undefined>)["observability.accessLogs"];
    const silent = routers.filter((router) => accessLogs(router) === "false").map((router) => router.name);
    expect(silent).toEqual(["account-pages"]);
  });

  test("the billing pages see the client's address, as auth does: the same proxy hops", () => {
    const hops = (name: string) => compose.services[name]?.environment?.TRUSTED_PROXY_HOPS;
    expect(hops("billing-service")).toBeDefined();
    expect(hops("billing-service")).toBe(hops("auth-service"));
  });

  test("the device socket router takes /api/v1/ws/… and nothing beside it", () => {
    expect(routerFor("/api/v1/ws/device")?.name).toBe("ws");
    expect(routerFor("/api/v1/wsx")).toBeUndefined();
    expect(routerFor("/api/v1/ws")).toBeUndefined();
  });
});

describe("supply chain", () => {
  test("every service built here is never pulled (pull_policy: build)", () => {
    const built = Object.entries(compose.services).filter(([, service]) => service.build);
    expect(built.length).toBe(appServices.length);
    for (const [name, service] of built)
      expect({ name, pull_policy: service.pull_policy }).toEqual({ name, pull_policy: "build" });
  });
});

describe("logs", () => {
  test("Alloy keeps its read positions on a volume, where --storage.path points", () => {
    const alloy = compose.services.alloy as ComposeService;
    const storage = alloy.command?.find((arg) => arg.startsWith("--storage.path="))?.split("=")[1];
    expect(storage).toBeDefined();
    const mount = alloy.volumes?.find((volume) => volume.split(":")[1] === storage);
    const source = mount?.split(":")[0] as string;
    expect({ mount: mount !== undefined, named: source in (compose.volumes ?? {}) }).toEqual({
      mount: true,
      named: true,
    });
  });
});

describe("deploys without 502s", () => {
  const env = (service: ComposeService, key: keyof typeof Env.shape) =>
    Env.shape[key].parse(service.environment?.[key]) as number;

  for (const [composeName, service] of appServices) {
    test(`${composeName}: Traefik checks /ready?scope=instance often enough to leave a draining replica in time`, () => {
      const labels = service.labels ?? [];
      const services = [
        ...new Set(labels.flatMap((label) => /^traefik\.http\.services\.([^.]+)\./.exec(label)?.[1] ?? [])),
      ];
      expect(services.length).toBeGreaterThan(0);
      const drainMs = env(service, "SHUTDOWN_DRAIN_DELAY_MS");
      for (const name of services) {
        const setting = (key: string) =>
          labels
            .find((label) => label.startsWith(`traefik.http.services.${name}.loadbalancer.healthcheck.${key}=`))
            ?.split("=")
            .slice(1)
            .join("=");
        expect({ name, path: setting("path") }).toEqual({ name, path: "/ready?scope=instance" });
        // Traefik has seen the 503 before the port closes: one interval plus one timeout, with room.
        expect(durationMs(setting("interval")) + durationMs(setting("timeout"))).toBeLessThan(drainMs);
      }
      // And Docker's SIGKILL waits for the drain and the grace period both.
      expect(durationMs(service.stop_grace_period)).toBeGreaterThan(drainMs + env(service, "SHUTDOWN_GRACE_MS"));
    });
  }

  test("a request no replica received is retried on another, at the entry point", () => {
    const names = (traefik.entryPoints.websecure as EntryPoint).http?.middlewares ?? [];
    const retries = names.filter((name) => middlewares[name.replace(/@file$/, "")]?.retry);
    expect(retries.length).toBe(1);
    expect(middlewares[(retries[0] as string).replace(/@file$/, "")]?.retry?.attempts).toBeGreaterThan(1);
  });
});

/** The ranges the firewall script allows, in the order it lists them. */
const firewallRanges = (text: string) => [...text.matchAll(/^ {2}([0-9a-f:.]+\/\d+)$/gm)].map((match) => match[1]);
/** The trusted ranges of Traefik's websecure entry point, as Traefik reads the YAML. */
const trustedIPsOf = (text: string) =>
  (parse(text, { merge: true }) as { entryPoints: Record<string, EntryPoint> }).entryPoints.websecure?.forwardedHeaders
    ?.trustedIPs ?? [];

describe("firewall", () => {
  const script = "infra/firewall/cloudflare-only.sh";
  const trusted = (traefik.entryPoints.websecure as EntryPoint).forwardedHeaders?.trustedIPs ?? [];

  /** Runs the script with recording stand-ins; `ipv6` says whether Docker manages ip6tables. */
  function runScript(ipv6: boolean, existingRules: boolean) {
    const dir = mkdtempSync(`${tmpdir()}/firewall-`);
    try {
      const log = `${dir}/calls`;
      const stub = (name: string, body: string) => {
        writeFileSync(`${dir}/${name}`, `#!/bin/sh\n${body}\n`);
        chmodSync(`${dir}/${name}`, 0o755);
      };
      const recording = (name: string, unavailable: boolean) =>
        `echo "${name} $*" >> ${log}\n` +
        `${unavailable ? "exit 1" : ""}\n` +
        `case "$1" in -C) ${existingRules ? "exit 0" : "exit 1"};; esac\nexit 0`;
      stub("iptables", recording("iptables", false));
      stub("ip6tables", recording("ip6tables", !ipv6));
      stub("ip", 'echo "default via 203.0.113.1 dev eth9 proto static"');
      const result = Bun.spawnSync(["sh", script], {
        env: { PATH: `${dir}:/usr/bin:/bin` },
        stdout: "pipe",
        stderr: "pipe",
      });
      expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
      return readFileSync(log, "utf8").trim().split("\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("it allows exactly the ranges Traefik trusts", () => {
    expect(firewallRanges(readFileSync(script, "utf8")).sort()).toEqual([...trusted].sort());
  });

  test("Cloudflare's ranges return to Docker's rules, anything else is dropped, on 80 and 443 of the public interface", () => {
    const calls = runScript(true, false);
    for (const [tool, family] of [
      ["iptables", trusted.filter((range) => !range.includes(":"))],
      ["ip6tables", trusted.filter((range) => range.includes(":"))],
    ] as const) {
      const chain = calls.filter((call) => call.startsWith(`${tool} -A ADIUVA-CLOUDFLARE`));
      expect(chain).toEqual([
        ...family.map((range) => `${tool} -A ADIUVA-CLOUDFLARE -s ${range} -j RETURN`),
        `${tool} -A ADIUVA-CLOUDFLARE -j DROP`,
      ]);
      expect(calls.filter((call) => call.startsWith(`${tool} -I DOCKER-USER`))).toEqual(
        ["80", "443"].map(
          (port) =>
            `${tool} -I DOCKER-USER -i eth9 -p tcp -m conntrack --ctorigdstport ${port} --ctdir ORIGINAL -j ADIUVA-CLOUDFLARE`,
        ),
      );
    }
  });

  test("run again, it replaces its chain and adds no second jump; without Docker's ip6tables it leaves IPv6 alone", () => {
    const calls = runScript(false, true);
    expect(calls.filter((call) => call.includes("-I DOCKER-USER"))).toEqual([]);
    expect(calls.filter((call) => call.startsWith("ip6tables") && !call.includes("-L DOCKER-USER"))).toEqual([]);
    expect(calls.filter((call) => call.startsWith("iptables -A ADIUVA-CLOUDFLARE")).at(-1)).toBe(
      "iptables -A ADIUVA-CLOUDFLARE -j DROP",
    );
  });
});

describe("refreshing Cloudflare's ranges", () => {
  const files = [
    "infra/firewall/refresh-cloudflare-ips.sh",
    "infra/firewall/cloudflare-only.sh",
    "infra/traefik/traefik.yml",
  ];
  const current = trustedIPsOf(readFileSync("infra/traefik/traefik.yml", "utf8"));
  const currentV4 = current.filter((range) => !range.includes(":"));
  const currentV6 = current.filter((range) => range.includes(":"));
  // What Cloudflare might publish next: one range renumbered, one dropped, one added, per family.
  const nextV4 = [
    ...currentV4.slice(1).map((range) => (range === "104.24.0.0/14" ? "104.28.0.0/14" : range)),
    "45.8.104.0/22",
  ];
  const nextV6 = [...currentV6.slice(0, -1), "2a09:bac0::/29"];
  const workspaces: string[] = [];
  afterEach(() => {
    for (const dir of workspaces.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of the infra files the script touches, and a directory for the lists. */
  function workspace() {
    const dir = mkdtempSync(`${tmpdir()}/cloudflare-ips-`);
    workspaces.push(dir);
    for (const file of files) {
      mkdirSync(`${dir}/${file.replace(/\/[^/]+$/, "")}`, { recursive: true });
      copyFileSync(file, `${dir}/${file}`);
      chmodSync(`${dir}/${file}`, statSync(file).mode);
    }
    mkdirSync(`${dir}/lists`);
    return dir;
  }
  /** Runs the copied script on lists given as text (Cloudflare's format: one range a line). */
  function refresh(dir: string, v4: string, v6: string, ...args: string[]) {
    writeFileSync(`${dir}/lists/ips-v4`, v4);
    writeFileSync(`${dir}/lists/ips-v6`, v6);
    const result = Bun.spawnSync(["sh", `${dir}/${files[0]}`, "--from", `${dir}/lists`, ...args], {
      env: { PATH: "/usr/bin:/bin" },
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
  }
  /** Every file's text and mode, and the names in each directory (a leftover temp file shows). */
  const snapshot = (dir: string) => ({
    files: Object.fromEntries(
      files.map((file) => [
        file,
        { text: readFileSync(`${dir}/${file}`, "utf8"), mode: statSync(`${dir}/${file}`).mode },
      ]),
    ),
    names: ["infra/firewall", "infra/traefik"].map((sub) => readdirSync(`${dir}/${sub}`).sort()),
  });
  const lines = (ranges: string[]) => `${ranges.join("\n")}\n`;

  test("no file but the firewall script and traefik.yml lists Cloudflare's ranges", () => {
    const candidates = [
      "compose.yaml",
      ...readdirSync("infra", { recursive: true, encoding: "utf8" })
        .filter((name) => !/^(keys|certs)(\/|$)/.test(name) && /\.(ya?ml|sh|alloy|json|toml|conf)$/.test(name))
        .map((name) => `infra/${name}`),
    ];
    const listing = candidates.filter((file) => {
      const text = readFileSync(file, "utf8");
      return current.some((range) => text.includes(range));
    });
    expect(listing.sort()).toEqual(["infra/firewall/cloudflare-only.sh", "infra/traefik/traefik.yml"]);
  });

  test("the ranges are replaced in both files, and nothing else in them changes", () => {
    const dir = workspace();
    const before = snapshot(dir);
    // Cloudflare's files have been served without a final newline.
    const result = refresh(dir, nextV4.join("\n"), lines(nextV6));
    expect(result).toEqual({
      code: 0,
      stdout: expect.stringContaining("docker compose up -d --force-recreate traefik"),
      stderr: "",
    });
    expect(result.stdout).toContain("sudo infra/firewall/cloudflare-only.sh");
    expect(result.stdout).toContain("+        - 2a09:bac0::/29");

    // The expected text: each original list swapped for the new one, everything around it kept.
    const traefikBefore = before.files["infra/traefik/traefik.yml"]?.text as string;
    const firewallBefore = before.files["infra/firewall/cloudflare-only.sh"]?.text as string;
    const item = (indent: string) => (range: string) => `${indent}${range}\n`;
    const after = snapshot(dir);
    expect(after).toEqual({
      files: {
        ...before.files,
        "infra/traefik/traefik.yml": {
          text: traefikBefore.replace(
            /(trustedIPs: &cloudflare\n)(?: {8}- \S+\n)+/,
            `$1${[...nextV4, ...nextV6].map(item("        - ")).join("")}`,
          ),
          mode: before.files["infra/traefik/traefik.yml"]?.mode as number,
        },
        "infra/firewall/cloudflare-only.sh": {
          text: firewallBefore
            .replace(/(CLOUDFLARE_V4="\n)(?: {2}\S+\n)+/, `$1${nextV4.map(item("  ")).join("")}`)
            .replace(/(CLOUDFLARE_V6="\n)(?: {2}\S+\n)+/, `$1${nextV6.map(item("  ")).join("")}`),
          mode: before.files["infra/firewall/cloudflare-only.sh"]?.mode as number,
        },
      },
      names: before.names,
    });

    // Traefik still reads its list, and the firewall allows exactly that list.
    const trusted = trustedIPsOf(after.files["infra/traefik/traefik.yml"]?.text as string);
    expect(trusted).toEqual([...nextV4, ...nextV6]);
    expect(firewallRanges(after.files["infra/firewall/cloudflare-only.sh"]?.text as string).sort()).toEqual(
      [...trusted].sort(),
    );
  });

  test("run again with the same lists, it changes nothing", () => {
    const dir = workspace();
    expect(refresh(dir, lines(nextV4), lines(nextV6)).code).toBe(0);
    const once = snapshot(dir);
    const again = refresh(dir, lines(nextV4), lines(nextV6));
    expect(again).toEqual({ code: 0, stdout: expect.stringContaining("unchanged"), stderr: "" });
    expect(snapshot(dir)).toEqual(once);
  });

  test("today's lists leave today's files as they are", () => {
    const dir = workspace();
    const before = snapshot(dir);
    expect(refresh(dir, lines(currentV4), lines(currentV6))).toEqual({
      code: 0,
      stdout: expect.stringContaining("unchanged"),
      stderr: "",
    });
    expect(snapshot(dir)).toEqual(before);
  });

  test("--check shows the change and exits 1 without writing", () => {
    const dir = workspace();
    const before = snapshot(dir);
    const result = refresh(dir, lines(nextV4), lines(nextV6), "--check");
    expect({ code: result.code, diff: result.stdout.includes("+  45.8.104.0/22") }).toEqual({ code: 1, diff: true });
    expect(snapshot(dir)).toEqual(before);
  });

  const refused: [string, string[], string[]][] = [
    ["an error page instead of a list", ["<html><body>Bad gateway</body></html>"], currentV6],
    ["an empty list", [], currentV6],
    ["a list cut short", currentV4.slice(0, 3), currentV6],
    ["a truncated last line", [...currentV4.slice(0, -1), "131.0.72"], currentV6],
    ["an IPv6 range in the IPv4 list", [...currentV4, "2400:cb00::/32"], currentV6],
    ["an octet above 255", [...currentV4, "256.1.0.0/16"], currentV6],
    ["a range that trusts everyone", [...currentV4, "0.0.0.0/0"], currentV6],
    ["an address with host bits past its prefix", [...currentV4, "104.16.0.1/13"], currentV6],
    ["a range listed twice", [...currentV4, currentV4[0] as string], currentV6],
    ["a malformed IPv6 range", currentV4, [...currentV6, "2400:cb00:::/32"]],
    ["an IPv6 range with a prefix above 128", currentV4, [...currentV6, "2400:cb00::/129"]],
    ["an IPv6 list cut short", currentV4, currentV6.slice(0, 2)],
  ];
  for (const [what, v4, v6] of refused) {
    test(`${what} is refused, and nothing is written`, () => {
      const dir = workspace();
      const before = snapshot(dir);
      const result = refresh(dir, lines([...v4]), lines([...v6]));
      expect({ code: result.code, stderr: result.stderr }).toEqual({
        code: 2,
        stderr: expect.stringMatching(/^refresh-cloudflare-ips: ips-v[46] /),
      });
      expect(snapshot(dir)).toEqual(before);
    });
  }

  test("CF_IPS_V4_FILE and CF_IPS_V6_FILE name the lists too", () => {
    const dir = workspace();
    writeFileSync(`${dir}/lists/v4`, lines(nextV4));
    writeFileSync(`${dir}/lists/v6`, lines(nextV6));
    const result = Bun.spawnSync(["sh", `${dir}/${files[0]}`], {
      env: { PATH: "/usr/bin:/bin", CF_IPS_V4_FILE: `${dir}/lists/v4`, CF_IPS_V6_FILE: `${dir}/lists/v6` },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    expect(trustedIPsOf(readFileSync(`${dir}/infra/traefik/traefik.yml`, "utf8"))).toEqual([...nextV4, ...nextV6]);
  });
});

describe("Cloudflare Authenticated Origin Pulls (optional)", () => {
  test("the commented client-certificate requirement, once uncommented, is valid and reads a mounted CA", () => {
    const text = readFileSync("infra/traefik/dynamic/tls.yml", "utf8");
    const enabled = text.replace(/^(\s*)# (clientAuth:|\s+caFiles:|\s+clientAuthType:)/gm, "$1$2");
    expect(enabled).not.toBe(text);
    const options = (parse(enabled) as { tls: { options: { default: Record<string, unknown> } } }).tls.options.default;
    expect(options.clientAuth).toEqual({
      caFiles: ["/certs/origin-pull-ca.pem"],
      clientAuthType: "RequireAndVerifyClientCert",
    });
    expect(compose.services.traefik?.volumes).toContain("./infra/certs:/certs:ro");
  });
});
