// The cut-over from the monolith, route by route: under the `migration` Compose profile, Traefik
// sends every /api/ path no service routes to the monolith (LEGACY_UPSTREAM) through the
// lowest-priority router. Checked against the routes the services really serve (their modules
// built on a real test platform), as compose.test.ts checks the routers themselves.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { createTestContext } from "../../src/shared/testing";
import { pathMatchers, type Router, routersOf } from "./compose-check";
import { servedRoutes } from "./served-routes";

interface ComposeService {
  image?: string;
  profiles?: string[];
  labels?: string[];
  environment?: Record<string, string>;
  entrypoint?: string[];
  networks?: string[];
}

const compose = parse(readFileSync("compose.yaml", "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const migration = Object.entries(compose.services).filter(([, service]) => service.profiles?.includes("migration"));
const legacyRouters = migration.flatMap(([, service]) => routersOf(service.labels));
const serviceRouters = Object.values(compose.services)
  .filter((service) => !service.profiles?.includes("migration"))
  .flatMap((service) => routersOf(service.labels));
const allRouters = [...serviceRouters, ...legacyRouters];

/** Traefik's order: explicit priority, else the rule's length. */
const priorityOf = (router: Router) => (router.priority ? Number(router.priority) : router.rule.length);

/** Traefik v3's verdict for a rule of `Path`/`PathPrefix` matchers joined by `||`. */
function matches(rule: string, path: string): boolean {
  return rule.split("||").some((term) => {
    const found = pathMatchers(term);
    const [matcher] = found;
    if (!matcher || found.length !== 1 || term.includes("&&")) throw new Error(`rule not understood: ${rule}`);
    return matcher.kind === "Path" ? path === matcher.path : path.startsWith(matcher.path);
  });
}
const routerFor = (path: string) =>
  allRouters.filter((router) => matches(router.rule, path)).sort((a, b) => priorityOf(b) - priorityOf(a))[0];

// Every path the services serve, parameters filled in.
const ctx = await createTestContext();
afterAll(() => ctx.close());
const servedPaths = [...(await servedRoutes(ctx)).values()]
  .flat()
  .map((route) => route.path.replace(/:[^/]+/g, "x").replace(/\*$/, "x"));

describe("migration profile", () => {
  test("one service, only under the profile, with one router: /api/ at priority 1 on the TLS entry point", () => {
    expect(migration.map(([name]) => name)).toEqual(["legacy-upstream"]);
    expect(legacyRouters).toEqual([
      { name: "legacy", rule: "PathPrefix(`/api/`)", entrypoints: "websecure", priority: "1", service: "legacy" },
    ]);
  });

  test("it proxies to LEGACY_UPSTREAM from .env, on the port its router sends to, and refuses to start without it", () => {
    const [, service] = migration[0] as [string, ComposeService];
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's interpolation, as compose.yaml has it
    expect(service.environment?.LEGACY_UPSTREAM).toBe("${LEGACY_UPSTREAM:-}");
    const script = service.entrypoint?.at(-1) ?? "";
    expect(script).toContain('test -n "$$LEGACY_UPSTREAM" ||');
    expect(script).toContain('--to "$$LEGACY_UPSTREAM"');
    const port = (service.labels ?? [])
      .map((label) => /^traefik\.http\.services\.legacy\.loadbalancer\.server\.port=(\d+)$/.exec(label)?.[1])
      .find(Boolean);
    expect(script).toContain(`--from :${port}`);
    expect(service.networks).toEqual(["edge"]);
    expect(service.image).toMatch(/^caddy:\d+\.\d+\.\d+-alpine$/);
  });

  test("every other router outranks it", () => {
    for (const router of serviceRouters) {
      expect({ router: router.name, outranks: priorityOf(router) > 1 }).toEqual({
        router: router.name,
        outranks: true,
      });
    }
  });

  test("every path a service serves stays with that service's router", () => {
    const api = servedPaths.filter((path) => path.startsWith("/api/"));
    expect(api.length).toBeGreaterThan(20);
    for (const path of api) {
      expect({ path, router: routerFor(path)?.name === "legacy" ? "legacy" : "a service" }).toEqual({
        path,
        router: "a service",
      });
    }
  });

  test("/api/ paths no service owns go to the monolith; nothing outside /api/ does", () => {
    for (const path of ["/api/v1/tasks", "/api/v1/projects/42", "/api/v1/wsx", "/api/v1/ws", "/api/v0/users"]) {
      expect({ path, router: routerFor(path)?.name }).toEqual({ path, router: "legacy" });
    }
    for (const path of ["/health", "/ready", "/metrics", "/api", "/"]) {
      expect({ path, router: routerFor(path)?.name }).toEqual({ path, router: undefined });
    }
  });
});

const dockerCompose = Bun.which("docker-compose");
describe("docker-compose config", () => {
  // Installed by .ci/run when apt is available; without it Compose's own validation cannot run.
  const cases = [
    { name: "without the profile", args: [], env: {} },
    { name: "with it and LEGACY_UPSTREAM unset", args: ["--profile", "migration"], env: {} },
    {
      name: "with it and LEGACY_UPSTREAM set",
      args: ["--profile", "migration"],
      env: { LEGACY_UPSTREAM: "http://10.0.0.5:8000" },
    },
  ];
  for (const { name, args, env } of cases) {
    test.skipIf(!dockerCompose)(`compose.yaml passes docker-compose config -q ${name}`, () => {
      const result = Bun.spawnSync(
        [dockerCompose as string, "--env-file", ".env.example", "-f", "compose.yaml", ...args, "config", "-q"],
        { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "", ...env } },
      );
      expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    });
  }

  test.skipIf(!dockerCompose)("the profile adds exactly the proxy, with the URL from the environment", () => {
    const result = Bun.spawnSync(
      [dockerCompose as string, "--env-file", ".env.example", "-f", "compose.yaml", "--profile", "migration", "config"],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", LEGACY_UPSTREAM: "http://10.0.0.5:8000" },
      },
    );
    const config = parse(result.stdout.toString()) as { services: Record<string, ComposeService> };
    expect(config.services["legacy-upstream"]?.environment?.LEGACY_UPSTREAM).toBe("http://10.0.0.5:8000");
  });
});
