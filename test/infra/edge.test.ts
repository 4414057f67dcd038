// Strategy: the edge (Traefik, Compose, the firewall script) cannot run here, so its files are read
// and each property the deploy depends on is checked against the code it protects: the auth
// service, started on a real test platform, says which path spellings it answers; env.ts and the
// tier table give the longest chat turn and the drain timings. The firewall script runs with
// stand-ins for iptables, ip6tables and ip on PATH that record their arguments.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const routers = Object.values(compose.services).flatMap((service) => routersOf(service.labels));
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
    const text = readFileSync(script, "utf8");
    const listed = [...text.matchAll(/^ {2}([0-9a-f:.]+\/\d+)$/gm)].map((match) => match[1]);
    expect(listed.sort()).toEqual([...trusted].sort());
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
