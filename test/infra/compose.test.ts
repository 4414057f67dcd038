// Strategy: no Docker engine runs here, so compose.yaml and the files it mounts are parsed and
// checked against the code itself: routes read from each service module built by its factory on a
// real test platform, env.ts's requirements, the key generator's output. When the docker-compose
// binary is installed, Compose's own validation runs as well; without it that check is skipped.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename } from "node:path";
import { parse } from "yaml";
import { ACCOUNT_PAGES_PREFIX } from "../../src/auth/pages";
import { BILLING_PAGES_PREFIX } from "../../src/billing/pages";
import { serviceFactories } from "../../src/services";
import { Env, loadEnv, requiredInProduction, SERVICE_NAMES, type ServiceName } from "../../src/shared/env";
import { createTestContext } from "../../src/shared/testing";
import {
  interpolate,
  MissingVariable,
  parseDotenv,
  pathMatchers,
  type Route,
  routersOf,
  unservedMatchers,
} from "./compose-check";
import { exporters, prometheusMetrics } from "./exporter-metrics";
import { histogramBase, metricsIn } from "./promql";
import { servedRoutes as servedRoutesOf } from "./served-routes";

interface ComposeService {
  image?: string;
  build?: { context: string; args?: Record<string, string> };
  environment?: Record<string, string | number>;
  secrets?: string[];
  labels?: string[];
  profiles?: string[];
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }> | string[];
  deploy?: {
    replicas?: number;
    resources?: { limits?: { cpus?: string; memory?: string }; reservations?: { cpus?: string; memory?: string } };
  };
  logging?: { driver: string; options?: Record<string, string> };
  command?: string[];
  stop_grace_period?: string;
  ulimits?: Record<string, number | { soft: number; hard: number }>;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file?: string; environment?: string }>;
}

const readYaml = <T>(path: string): T => parse(readFileSync(path, "utf8"), { merge: true }) as T;
const compose = readYaml<ComposeFile>("compose.yaml");
const dotenvExample = parseDotenv(readFileSync(".env.example", "utf8"));
const appServices = Object.entries(compose.services).filter(([, service]) => service.environment?.SERVICE_NAME);
const serviceNameOf = (service: ComposeService) => String(service.environment?.SERVICE_NAME) as ServiceName;
const environmentOf = (service: ComposeService) =>
  Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([key, value]) => [key, interpolate(String(value), dotenvExample)]),
  );

// Routes each service really serves, read from its module built on a real platform.
const ctx = await createTestContext();
afterAll(() => ctx.close());
const servedRoutes = await servedRoutesOf(ctx);

describe("route checker", () => {
  const routes: Route[] = [
    { method: "POST", path: "/api/v1/auth/login" },
    { method: "GET", path: "/api/v1/auth/me" },
    { method: "WS", path: "/api/v1/ws/device" },
    { method: "POST", path: "/api/v1/chat/" },
  ];
  test("reads routers from list and map labels", () => {
    const expected = [{ name: "a", rule: "PathPrefix(`/x`)", service: "s" }];
    expect(routersOf(["traefik.http.routers.a.rule=PathPrefix(`/x`)", "traefik.http.routers.a.service=s"])).toEqual(
      expected,
    );
    expect(
      routersOf({ "traefik.http.routers.a.rule": "PathPrefix(`/x`)", "traefik.http.routers.a.service": "s" }),
    ).toEqual(expected);
  });
  test("accepts prefixes and paths that are served", () => {
    expect(unservedMatchers("PathPrefix(`/api/v1/auth`)", routes)).toEqual([]);
    expect(unservedMatchers("PathPrefix(`/api/v1/ws`)", routes)).toEqual([]);
    expect(unservedMatchers("PathPrefix(`/api/v1/chat`)", routes)).toEqual([]);
    expect(unservedMatchers("Path(`/api/v1/chat`)", routes)).toEqual([]);
    expect(unservedMatchers("Path(`/api/v1/auth/login`) && Method(`POST`)", routes)).toEqual([]);
  });
  test("reports what no route serves", () => {
    expect(unservedMatchers("PathPrefix(`/api/v1/agents`)", routes)).toEqual(["PathPrefix(`/api/v1/agents`)"]);
    expect(unservedMatchers("PathPrefix(`/api/v1/au`)", routes)).toEqual(["PathPrefix(`/api/v1/au`)"]);
    expect(unservedMatchers("Path(`/api/v1/auth/login`) || Path(`/api/v1/auth/register`)", routes)).toEqual([
      "Path(`/api/v1/auth/register`)",
    ]);
    expect(unservedMatchers("PathPrefix(`/api/v1/auth`)", [])).toEqual(["PathPrefix(`/api/v1/auth`)"]);
  });
  test("interpolates like Compose", () => {
    const vars = { SET: "v", EMPTY: "" };
    expect(interpolate(`a\${SET}b$SET$$`, vars)).toBe("avbv$");
    expect(interpolate(`\${EMPTY:-d}|\${EMPTY-d}|\${NONE-d}|\${NONE}`, vars)).toBe("d||d|");
    expect(interpolate(`\${EMPTY?x}`, vars)).toBe("");
    expect(() => interpolate(`\${EMPTY:?needed}`, vars)).toThrow(MissingVariable);
  });
});

describe("compose.yaml services", () => {
  test("one service per SERVICE_NAME, built from the Dockerfile with its own build arg", () => {
    expect(appServices.map(([, service]) => serviceNameOf(service)).sort()).toEqual([...SERVICE_NAMES].sort());
    for (const [, service] of appServices) {
      expect(service.build).toEqual({ context: ".", args: { SERVICE: serviceNameOf(service) } });
    }
  });

  test("replicas as planned: auth 2, chat 2, agent 2, billing 1, storage 1, plugins 1", () => {
    const replicas = Object.fromEntries(appServices.map(([, s]) => [serviceNameOf(s), s.deploy?.replicas]));
    expect(replicas).toEqual({ auth: 2, chat: 2, agent: 2, billing: 1, storage: 1, plugins: 1 });
  });

  for (const [composeName, service] of appServices) {
    const name = serviceNameOf(service);
    test(`${composeName}: every variable required in production is set, and the whole environment is valid`, () => {
      const environment = environmentOf(service);
      expect(environment.NODE_ENV).toBe("production");
      expect(requiredInProduction[name].filter((key) => !environment[key])).toEqual([]);
      expect(Object.keys(environment).filter((key) => !(key in Env.shape))).toEqual([]);
      expect(() => loadEnv(environment)).not.toThrow();
    });

    test(`${composeName}: defaults written in compose.yaml are env.ts's defaults`, () => {
      for (const [key, raw] of Object.entries(service.environment ?? {})) {
        const fallback = new RegExp(`^\\$\\{${key}:-([^}]*)\\}$`).exec(String(raw));
        const schema = Env.shape[key as keyof typeof Env.shape];
        if (!fallback || !schema) continue;
        expect({ key, value: schema.parse(fallback[1]) }).toEqual({ key, value: schema.parse(undefined) });
      }
    });

    test(`${composeName}: key files point at secrets the service mounts`, () => {
      const files = Object.entries(environmentOf(service)).filter(([key]) => key.endsWith("_FILE"));
      expect(files.length).toBeGreaterThan(0);
      for (const [key, path] of files) {
        const secret = /^\/run\/secrets\/([\w-]+)$/.exec(path)?.[1];
        expect({ key, secret, mounted: service.secrets?.includes(secret ?? "") }).toEqual({
          key,
          secret: expect.any(String),
          mounted: true,
        });
        expect(compose.secrets[secret as string]).toBeDefined();
      }
    });

    test(`${composeName}: waits for healthy PostgreSQL and Redis, has a healthcheck, drains before SIGKILL`, () => {
      expect(service.depends_on).toMatchObject({
        db: { condition: "service_healthy" },
        redis: { condition: "service_healthy" },
      });
      expect(service.healthcheck?.test).toEqual(["CMD", "/app/service", "healthcheck"]);
      const graceMs = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? "")?.[1] ?? 10) * 1000;
      expect(graceMs).toBeGreaterThan(Env.shape.SHUTDOWN_GRACE_MS.parse(undefined));
    });

    const routers = routersOf(service.labels);
    const routes = servedRoutes.get(name) ?? [];
    // A service whose routes are not written yet cannot be checked; the skip shows in the summary.
    test.skipIf(routes.length === 0)(`${composeName}: every Traefik path matcher is served by ${name}`, () => {
      expect(routers.length).toBeGreaterThan(0);
      for (const router of routers) {
        expect({ router: router.name, unserved: unservedMatchers(router.rule, routes) }).toEqual({
          router: router.name,
          unserved: [],
        });
      }
    });
  }

  test("every depends_on condition can be met", () => {
    for (const service of Object.values(compose.services)) {
      if (!service.depends_on || Array.isArray(service.depends_on)) continue;
      for (const [dependency, { condition }] of Object.entries(service.depends_on)) {
        expect(compose.services[dependency]).toBeDefined();
        if (condition === "service_healthy") expect(compose.services[dependency]?.healthcheck).toBeDefined();
      }
    }
  });

  test("every secret file exists after `bun run keys`", () => {
    const dir = mkdtempSync(`${tmpdir()}/adiuva-keys-`);
    try {
      const result = Bun.spawnSync(["bun", "scripts/keys.ts", dir], { stdout: "pipe", stderr: "pipe" });
      expect(result.exitCode).toBe(0);
      // Secrets taken from .env (the database password) are no files.
      for (const { file } of Object.values(compose.secrets)) {
        if (file === undefined) continue;
        expect(file.startsWith("./infra/keys/")).toBe(true);
        expect({ file, exists: existsSync(`${dir}/${basename(file)}`) }).toEqual({ file, exists: true });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(".env.example provides every variable compose.yaml requires", () => {
    const text = readFileSync("compose.yaml", "utf8");
    expect(() => interpolate(text.replace(/^\s*#.*$/gm, ""), dotenvExample)).not.toThrow();
  });
});

describe("traefik", () => {
  // The migration profile's catch-all towards the monolith is checked in migration-profile.test.ts.
  const routers = Object.values(compose.services)
    .filter((service) => !service.profiles?.includes("migration"))
    .flatMap((service) => routersOf(service.labels));
  const staticConfig = readYaml<Record<string, unknown>>("infra/traefik/traefik.yml");
  const dynamicMiddlewares = new Set(
    ["middlewares.yml", "tls.yml"].flatMap((file) =>
      Object.keys(
        readYaml<{ http?: { middlewares?: Record<string, unknown> } }>(`infra/traefik/dynamic/${file}`).http
          ?.middlewares ?? {},
      ),
    ),
  );

  // Besides the API, only the billing and account pages (each prefix itself and what is under it) reach a service.
  const pagePrefixes = { "billing-pages": BILLING_PAGES_PREFIX, "account-pages": ACCOUNT_PAGES_PREFIX };
  const pagePaths = Object.values(pagePrefixes).flatMap((prefix) => [prefix, `${prefix}/`]);
  test("routers serve only /api/v1 and the billing and account pages on the TLS entry point; health, ready and metrics stay private", () => {
    for (const router of routers) {
      expect({ router: router.name, entrypoints: router.entrypoints }).toEqual({
        router: router.name,
        entrypoints: "websecure",
      });
      for (const { path } of pathMatchers(router.rule)) {
        expect({ path, routed: path.startsWith("/api/v1/") || pagePaths.includes(path) }).toEqual({
          path,
          routed: true,
        });
      }
    }
    for (const [name, prefix] of Object.entries(pagePrefixes)) {
      const pages = routers.find((router) => router.name === name);
      expect({ name, matchers: pathMatchers(pages?.rule ?? "") }).toEqual({
        name,
        matchers: [
          { kind: "Path", path: prefix },
          { kind: "PathPrefix", path: `${prefix}/` },
        ],
      });
    }
    expect(routers.find((router) => router.name === "billing-pages")?.service).toBe("billing");
    expect(routers.find((router) => router.name === "account-pages")?.service).toBe("auth");
    expect(routers.map((router) => pathMatchers(router.rule)[0]?.path).sort()).toEqual(
      expect.arrayContaining([
        "/api/v1/agents",
        "/api/v1/auth",
        "/api/v1/billing",
        "/api/v1/chat",
        "/api/v1/plugins",
        "/api/v1/storage",
        "/api/v1/ws/",
      ]),
    );
  });

  test("login and register are rate limited", () => {
    const login = routers.find((router) => router.rule.includes("/api/v1/auth/login"));
    expect(login?.rule).toContain("/api/v1/auth/register");
    expect(login?.middlewares).toBe("auth-ratelimit@file");
  });

  // The SDK sends no cookies, and any chat replica serves any device: presence and the device RPC
  // live in Redis (test/chat/gateway/rpc.test.ts, "a device on A answers a call made on B").
  test("no service is sticky: device sockets go to any chat replica", () => {
    const ws = routers.find((router) => router.rule.includes("/api/v1/ws"));
    expect(ws?.service).toBeString();
    const sticky = Object.values(compose.services)
      .flatMap((service) => service.labels ?? [])
      .filter((label) => /\.sticky\b/.test(label));
    expect(sticky).toEqual([]);
  });

  test("every middleware a router names is defined", () => {
    const named = routers.flatMap((router) => router.middlewares?.split(",") ?? []);
    const entry = (staticConfig.entryPoints as { websecure: { http: { middlewares: string[] } } }).websecure.http
      .middlewares;
    for (const middleware of [...named, ...entry]) {
      expect(middleware.endsWith("@file") && dynamicMiddlewares.has(middleware.replace(/@file$/, ""))).toBe(true);
    }
  });

  test("each service's traffic goes to its PORT, never to METRICS_PORT; app services publish no port", () => {
    for (const [composeName, service] of appServices) {
      const environment = environmentOf(service);
      const ports = (service.labels ?? []).flatMap(
        (label) => /^traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port=(\d+)$/.exec(label)?.[1] ?? [],
      );
      expect(ports.length).toBeGreaterThan(0);
      expect({ composeName, ports: [...new Set(ports)] }).toEqual({ composeName, ports: [String(environment.PORT)] });
      expect(environment.METRICS_PORT).toMatch(/^\d+$/);
      expect(environment.METRICS_PORT).not.toBe(environment.PORT);
      expect(service.ports).toBeUndefined();
    }
  });

  test("no dashboard or insecure API; only 80 and 443 published; certificates mounted", () => {
    expect(staticConfig.api).toBeUndefined();
    const traefik = compose.services.traefik as ComposeService;
    expect(traefik.ports).toEqual(["80:80", "443:443"]);
    expect(traefik.volumes).toContain("./infra/certs:/certs:ro");
    const tls = readYaml<{ tls: { certificates: Array<{ certFile: string; keyFile: string }> } }>(
      "infra/traefik/dynamic/tls.yml",
    ).tls;
    expect(tls.certificates).toEqual([{ certFile: "/certs/origin.pem", keyFile: "/certs/origin-key.pem" }]);
  });
});

describe("monitoring profile", () => {
  const monitoring = Object.entries(compose.services).filter(([, service]) => service.profiles?.includes("monitoring"));

  test("Prometheus, Alertmanager, the exporters, Grafana and Loki run only under the monitoring profile", () => {
    expect(monitoring.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        "prometheus",
        "alertmanager",
        "grafana",
        "loki",
        ...exporters.map((exporter) => exporter.service),
      ]),
    );
    for (const [, service] of appServices) expect(service.profiles).toBeUndefined();
  });

  test("Prometheus scrapes /metrics on the metrics port of every replica of every service", () => {
    const config = readYaml<{
      scrape_configs: Array<{ metrics_path?: string; dns_sd_configs?: Array<{ names: string[]; port: number }> }>;
    }>("infra/prometheus/prometheus.yml");
    const targets = config.scrape_configs.flatMap((job) =>
      (job.dns_sd_configs ?? []).flatMap((sd) =>
        sd.names.map((name) => ({ name, port: sd.port, path: job.metrics_path ?? "/metrics" })),
      ),
    );
    for (const [composeName, service] of appServices) {
      const port = Number(environmentOf(service).METRICS_PORT);
      expect(targets).toContainEqual({ name: composeName, port, path: "/metrics" });
    }
    // The public port serves no /metrics any more: a scrape of it would only ever fail.
    const publicPorts = new Set(appServices.map(([, service]) => Number(environmentOf(service).PORT)));
    expect(targets.filter((target) => publicPorts.has(target.port))).toEqual([]);
  });
});

describe("alert rules", () => {
  const rules = readYaml<{ groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }>(
    "infra/prometheus/alerts.yml",
  ).groups.flatMap((group) => group.rules);
  const source = new Bun.Glob("src/**/*.ts");
  const fromExporters = new Set([...prometheusMetrics, ...exporters.flatMap((exporter) => exporter.metrics)]);

  test("Prometheus loads them, from the file Compose mounts", () => {
    const config = readYaml<{ rule_files?: string[] }>("infra/prometheus/prometheus.yml");
    expect(config.rule_files).toEqual(["/etc/prometheus/alerts.yml"]);
    expect(compose.services.prometheus?.volumes).toContain(
      "./infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro",
    );
  });

  test("every metric an alert reads is one the services export (a misspelt one would never fire)", async () => {
    const code = (await Array.fromAsync(source.scan("."))).map((file) => readFileSync(file, "utf8")).join("\n");
    // Prometheus's own and the exporters' are checked against their lists, not the code.
    const metrics = new Set(rules.flatMap((rule) => metricsIn(rule.expr)).filter((name) => !fromExporters.has(name)));
    expect(metrics.size).toBeGreaterThanOrEqual(4);
    expect([...metrics].filter((name) => !code.includes(`"${name}"`))).toEqual([]);
  });

  test("every metric an alert reads is on /metrics of a started service, before any traffic", async () => {
    // Started for real (migrations, consumers, workers), so what is registered at start counts too.
    const registered = new Set<string>();
    for (const name of SERVICE_NAMES) {
      const server = await ctx.start([serviceFactories[name]], { service: name });
      for (const metric of server.platform.metrics.registry.getMetricsAsArray()) registered.add(metric.name);
    }
    const read = rules.flatMap((rule) => metricsIn(rule.expr));
    expect(read).toEqual(expect.arrayContaining(["chat_turns_total", "agent_runs_total", "service_ready"]));
    expect(read.filter((name) => !fromExporters.has(name) && !registered.has(name))).toEqual([]);
  });

  const promtool = Bun.which("promtool");
  // Installed by .ci/run when apt is available (Debian's prometheus package); skipped without it.
  test.skipIf(!promtool)("promtool accepts the rules and the Prometheus configuration", () => {
    const dir = mkdtempSync(`${tmpdir()}/prometheus-`);
    try {
      const config = readFileSync("infra/prometheus/prometheus.yml", "utf8").replace(
        "/etc/prometheus/alerts.yml",
        `${process.cwd()}/infra/prometheus/alerts.yml`,
      );
      writeFileSync(`${dir}/prometheus.yml`, config);
      for (const args of [
        ["check", "rules", "infra/prometheus/alerts.yml"],
        ["check", "config", `${dir}/prometheus.yml`],
      ]) {
        const result = Bun.spawnSync([promtool as string, ...args], { stdout: "pipe", stderr: "pipe" });
        expect({ args, code: result.exitCode, stderr: result.stderr.toString() }).toEqual({
          args,
          code: 0,
          stderr: "",
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("alerting", () => {
  interface Rule {
    alert: string;
    expr: string;
    labels?: Record<string, string>;
  }
  const rules = readYaml<{ groups: Array<{ rules: Rule[] }> }>("infra/prometheus/alerts.yml").groups.flatMap(
    (group) => group.rules,
  );
  const prometheus = readYaml<{
    alerting?: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
    scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }> }>;
  }>("infra/prometheus/prometheus.yml");
  const staticTargets = Object.fromEntries(
    prometheus.scrape_configs.map((job) => [job.job_name, (job.static_configs ?? []).flatMap((each) => each.targets)]),
  );
  const alertmanager = compose.services.alertmanager as ComposeService & { entrypoint?: string[] };

  test("every monitoring image is pinned to an exact version", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (!service.profiles?.includes("monitoring")) continue;
      expect({ name, image: service.image }).toEqual({ name, image: expect.stringMatching(/:v?\d+\.\d+\.\d+$/) });
    }
  });

  test("Prometheus sends its alerts to the Alertmanager Compose starts", () => {
    expect(prometheus.alerting?.alertmanagers.flatMap((each) => each.static_configs.flatMap((c) => c.targets))).toEqual(
      ["alertmanager:9093"],
    );
    expect(alertmanager.profiles).toEqual(["monitoring"]);
    expect(compose.services.prometheus?.depends_on).toEqual(["alertmanager"]);
  });

  test("Alertmanager's receiver comes from .env, through the committed start script", () => {
    expect(alertmanager.entrypoint).toEqual(["sh", "/etc/alertmanager/start.sh"]);
    expect(alertmanager.volumes).toEqual(
      expect.arrayContaining([
        "./infra/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
        "./infra/alertmanager/start.sh:/etc/alertmanager/start.sh:ro",
      ]),
    );
    expect(alertmanager.environment?.ALERT_WEBHOOK_URL).toBe(`\${ALERT_WEBHOOK_URL:?set ALERT_WEBHOOK_URL in .env}`);
    expect(dotenvExample.ALERT_WEBHOOK_URL).toMatch(/^https?:\/\//);
    expect(readFileSync("infra/alertmanager/alertmanager.yml", "utf8")).toContain(`url: '\${ALERT_WEBHOOK_URL}'`);
  });

  const render = (url: string) =>
    Bun.spawnSync(["sh", "infra/alertmanager/start.sh", "render"], {
      env: { ...process.env, ALERT_WEBHOOK_URL: url, ALERTMANAGER_TEMPLATE: "infra/alertmanager/alertmanager.yml" },
      stdout: "pipe",
      stderr: "pipe",
    });

  test("the start script writes the URL as it is, and refuses one that would break the YAML", () => {
    const url = "https://hooks.example.com/alerts?token=a&b=c\\d";
    const rendered = render(url);
    expect(rendered.exitCode).toBe(0);
    const config = parse(rendered.stdout.toString()) as {
      receivers: Array<{ webhook_configs: Array<{ url: string }> }>;
    };
    expect(config.receivers.flatMap((receiver) => receiver.webhook_configs.map((each) => each.url))).toEqual([url]);
    for (const bad of ["", "hooks.example.com", "https://x/a'b", "https://x/a b"]) {
      expect({ bad, code: render(bad).exitCode }).toEqual({ bad, code: 1 });
    }
  });

  const amtool = Bun.which("amtool");
  // Installed by .ci/run when apt is available (Debian's prometheus-alertmanager); skipped without it.
  test.skipIf(!amtool)("amtool accepts the configuration rendered from .env.example", () => {
    const dir = mkdtempSync(`${tmpdir()}/alertmanager-`);
    try {
      const rendered = render(dotenvExample.ALERT_WEBHOOK_URL ?? "");
      expect(rendered.exitCode).toBe(0);
      writeFileSync(`${dir}/alertmanager.yml`, rendered.stdout);
      const result = Bun.spawnSync([amtool as string, "check-config", `${dir}/alertmanager.yml`], {
        stdout: "pipe",
        stderr: "pipe",
      });
      expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A crashed replica leaves Docker's DNS: its target vanishes and up == 0 never fires for it.
  test("a ReplicaMissing rule per service, counting its targets against compose.yaml's replicas", () => {
    for (const [composeName, service] of appServices) {
      const replicas = service.deploy?.replicas ?? 1;
      const selector = `up{job="adiuva", compose_service="${composeName}"}`;
      const rule = rules.find((each) => each.alert === "ReplicaMissing" && each.expr.includes(`"${composeName}"`));
      expect({ composeName, expr: rule?.expr.trim() }).toEqual({
        composeName,
        expr: `count(${selector}) < ${replicas} or absent(${selector})`,
      });
      expect(rule?.labels?.compose_service).toBe(composeName);
    }
  });

  test("alerts cover readiness, the data stores, Redis's memory and the host's disk", () => {
    expect(rules.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        "ServiceNotReady",
        "PostgresDown",
        "RedisDown",
        "QdrantDown",
        "RedisMemoryNearMax",
        "DiskAlmostFull",
        "ExporterDown",
      ]),
    );
  });

  test("each exporter runs the image its metric list was written for, and Prometheus scrapes it", () => {
    for (const exporter of exporters) {
      const service = compose.services[exporter.service];
      expect({ service: exporter.service, image: service?.image }).toEqual({
        service: exporter.service,
        image: exporter.image,
      });
      expect(staticTargets[exporter.job]?.[0]?.split(":")[0]).toBe(exporter.service);
      for (const metric of exporter.metrics) {
        expect({ metric, read: rules.some((rule) => metricsIn(rule.expr).includes(metric)) }).toEqual({
          metric,
          read: true,
        });
      }
    }
    // Qdrant serves /metrics on its API port itself.
    expect(staticTargets.qdrant).toEqual(["qdrant:6333"]);
  });

  test("exporters reach the stores on the internal network; node-exporter sees the host's root read-only", () => {
    for (const exporter of exporters) expect(compose.services[exporter.service]?.ports).toBeUndefined();
    const postgres = environmentOf(compose.services["postgres-exporter"] as ComposeService);
    const database = new URL(environmentOf(appServices[0]![1]).DATABASE_URL ?? "");
    expect(postgres.DATA_SOURCE_URI?.split("?")[0]).toBe(`${database.host}${database.pathname}`);
    expect(postgres.DATA_SOURCE_USER).toBe(database.username);
    expect(postgres.DATA_SOURCE_PASS_FILE).toBe(environmentOf(appServices[0]![1]).DATABASE_PASSWORD_FILE);
    expect(compose.services["postgres-exporter"]?.secrets).toEqual(["postgres_password"]);
    expect(environmentOf(compose.services["redis-exporter"] as ComposeService).REDIS_ADDR).toBe(
      environmentOf(appServices[0]![1]).REDIS_URL,
    );
    const node = compose.services["node-exporter"] as ComposeService;
    expect(node.volumes).toEqual(["/:/host:ro,rslave"]);
    expect(node.command).toEqual(["--path.rootfs=/host"]);
  });
});

describe("Grafana dashboards", () => {
  interface Panel {
    title: string;
    datasource?: { uid: string };
    targets?: Array<{ expr: string; datasource?: { uid: string } }>;
    panels?: Panel[];
  }
  interface Provider {
    type: string;
    options: { path: string };
  }
  const files = [...new Bun.Glob("*.json").scanSync("infra/grafana/dashboards")].sort();
  const providers = readYaml<{ providers: Provider[] }>(
    "infra/grafana/provisioning/dashboards/dashboards.yml",
  ).providers;
  const datasources = readYaml<{ datasources: Array<{ uid?: string; type: string }> }>(
    "infra/grafana/provisioning/datasources/datasources.yml",
  ).datasources;
  const panelsOf = (panels: Panel[]): Panel[] => panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);
  const dashboards = files.map((file) => {
    const json = JSON.parse(readFileSync(`infra/grafana/dashboards/${file}`, "utf8")) as {
      uid: string;
      title: string;
      panels: Panel[];
    };
    return { file, ...json, panels: panelsOf(json.panels) };
  });

  test("one per service and an overview, each with its own uid", () => {
    expect(files).toEqual([...SERVICE_NAMES.map((name) => `${name}.json`), "overview.json"].sort());
    expect(new Set(dashboards.map((dashboard) => dashboard.uid)).size).toBe(files.length);
  });

  test("the provisioning file loads the directory Compose mounts them in", () => {
    const mount = compose.services.grafana?.volumes?.find((volume) => volume.startsWith("./infra/grafana/dashboards:"));
    const target = mount?.split(":")[1];
    expect(target).toBeString();
    expect(providers.map((provider) => ({ type: provider.type, path: provider.options.path }))).toEqual([
      { type: "file", path: target as string },
    ]);
    expect(compose.services.grafana?.volumes).toContain("./infra/grafana/provisioning:/etc/grafana/provisioning:ro");
  });

  test("every panel queries a provisioned datasource", () => {
    const uids = new Set(datasources.map((datasource) => datasource.uid));
    for (const { file, panels } of dashboards) {
      for (const panel of panels.filter((each) => each.targets)) {
        const used = [panel.datasource?.uid, ...(panel.targets ?? []).map((target) => target.datasource?.uid)];
        expect({ file, panel: panel.title, missing: used.filter((uid) => uid && !uids.has(uid)) }).toEqual({
          file,
          panel: panel.title,
          missing: [],
        });
        expect(panel.targets?.length).toBeGreaterThan(0);
      }
    }
  });

  test("every metric a panel queries is one the code or an exporter exports", async () => {
    const code = (await Array.fromAsync(new Bun.Glob("src/**/*.ts").scan(".")))
      .map((file) => readFileSync(file, "utf8"))
      .join("\n");
    const known = new Set([...prometheusMetrics, ...exporters.flatMap((exporter) => exporter.metrics)]);
    const exported = (name: string) =>
      known.has(name) ||
      code.includes(`"${name}"`) ||
      (histogramBase(name) !== name && code.includes(`"${histogramBase(name)}"`));
    const read = dashboards.flatMap(({ file, panels }) =>
      panels.flatMap((panel) =>
        (panel.targets ?? []).flatMap((target) => metricsIn(target.expr).map((metric) => ({ file, metric }))),
      ),
    );
    expect(read.length).toBeGreaterThan(40);
    expect(read.filter(({ metric }) => !exported(metric))).toEqual([]);
    // What the overview promises: the names the code really exports.
    const overview = new Set(read.filter(({ file }) => file === "overview.json").map(({ metric }) => metric));
    expect([...overview]).toEqual(
      expect.arrayContaining([
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "device_connections",
        "device_rpc_calls_total",
        "chat_turns_total",
        "chat_first_text_seconds_bucket",
        "agent_runs_total",
        "agent_runs_active",
        "billing_webhook_events_total",
        "auth_tier_events_pending",
      ]),
    );
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync("Dockerfile", "utf8");
  test("builds one service's executable on the pinned Bun and runs it as non-root with a healthcheck", () => {
    const bun = (JSON.parse(readFileSync("package.json", "utf8")) as { engines: { bun: string } }).engines.bun;
    expect(dockerfile).toContain(`FROM oven/bun:${bun} AS build`);
    expect(dockerfile).toContain("bun install --frozen-lockfile");
    expect(dockerfile).toContain('bun scripts/build.ts "$SERVICE"');
    expect(dockerfile).toContain(`case "$SERVICE" in ${SERVICE_NAMES.join("|")})`);
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    // Only the API port: the metrics port is reached over the compose network, never exposed.
    expect(dockerfile.match(/^EXPOSE .*$/gm)).toEqual(["EXPOSE 8000"]);
    const env = /^ENV (.*)$/m.exec(dockerfile)?.[1]?.split(" ") ?? [];
    expect(env).toEqual(
      expect.arrayContaining(["PORT=8000", `METRICS_PORT=${environmentOf(appServices[0]![1]).METRICS_PORT}`]),
    );
    expect(dockerfile).toMatch(/^HEALTHCHECK .*CMD \["\/app\/service", "healthcheck"\]$/m);
  });
});

const dockerCompose = Bun.which("docker-compose");
describe("docker-compose config", () => {
  // Installed by .ci/run when apt is available; without it Compose's own validation cannot run.
  for (const file of ["compose.yaml", "infra/compose.test.yaml"]) {
    test.skipIf(!dockerCompose)(`${file} passes docker-compose config -q`, () => {
      const result = Bun.spawnSync(
        [dockerCompose as string, "--env-file", ".env.example", "-f", file, "--profile", "monitoring", "config", "-q"],
        { stdout: "pipe", stderr: "pipe" },
      );
      expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    });
  }
});

describe("backup service", () => {
  interface BackupService extends ComposeService {
    entrypoint?: string[];
    networks?: string[];
    deploy?: { resources?: { limits?: { cpus?: string; memory?: string } } };
  }
  const backup = compose.services.backup as BackupService | undefined;
  const db = compose.services.db as ComposeService;
  const majorOf = (image = "") => /^postgres:(\d+)/.exec(image)?.[1];

  test("runs the committed script, mounted read-only, on the dump volume", () => {
    expect(backup?.entrypoint).toEqual(["sh", "/backup/backup.sh"]);
    expect(backup?.volumes).toEqual(
      expect.arrayContaining(["./infra/backup/backup.sh:/backup/backup.sh:ro", "postgres_backups:/backups"]),
    );
    expect(existsSync("infra/backup/backup.sh")).toBe(true);
    expect(Object.keys((parse(readFileSync("compose.yaml", "utf8")) as { volumes: object }).volumes)).toContain(
      "postgres_backups",
    );
    expect(environmentOf(backup as ComposeService)).toMatchObject({
      BACKUP_DIR: "/backups",
      BACKUP_RUN_AS: "postgres",
    });
  });

  test("uses the postgres image of db's major version (pg_dump refuses a newer server)", () => {
    expect(majorOf(db.image)).toMatch(/^\d+$/);
    expect(majorOf(backup?.image)).toBe(majorOf(db.image));
  });

  test("has CPU and memory limits and a healthcheck on the age of the newest dump", () => {
    expect(backup?.deploy?.resources?.limits).toEqual({ cpus: expect.any(String), memory: expect.any(String) });
    expect(backup?.healthcheck?.test).toEqual(["CMD", "sh", "/backup/backup.sh", "check"]);
  });

  test("reaches db only on the internal network, as the services' user and password, after db is healthy", () => {
    expect(backup?.networks).toEqual(["backend"]);
    expect(backup?.depends_on).toEqual({ db: { condition: "service_healthy" } });
    const environment = environmentOf(backup as ComposeService);
    const appEnvironment = environmentOf(appServices[0]![1]);
    const url = new URL(appEnvironment.DATABASE_URL ?? "");
    expect({ host: environment.PGHOST, user: environment.PGUSER, database: environment.PGDATABASE }).toEqual({
      host: url.hostname,
      user: url.username,
      database: url.pathname.slice(1),
    });
    // Once the services read the password from a secret, the backup must read the same one.
    const passwordFile = appEnvironment.DATABASE_PASSWORD_FILE;
    const secret = passwordFile?.replace(/^\/run\/secrets\//, "");
    expect({
      password: environment.PGPASSWORD,
      file: environment.PGPASSWORD_FILE,
      mounted: secret === undefined || backup?.secrets?.includes(secret),
    }).toEqual({ password: passwordFile ? undefined : url.password, file: passwordFile, mounted: true });
  });

  test("defaults: a dump every 6 hours, 28 kept", () => {
    expect(environmentOf(backup as ComposeService)).toMatchObject({ BACKUP_INTERVAL_H: "6", BACKUP_KEEP: "28" });
    const script = readFileSync("infra/backup/backup.sh", "utf8");
    // The script's own defaults, for `backup.sh once` run by hand.
    expect(script).toContain(`BACKUP_INTERVAL_H="\${BACKUP_INTERVAL_H:-6}"`);
    expect(script).toContain(`BACKUP_KEEP="\${BACKUP_KEEP:-28}"`);
  });
});

describe("resources and logs", () => {
  const cpus = (service: ComposeService) => Number(service.deploy?.resources?.limits?.cpus);
  const mebibytes = (size: string | undefined) => {
    const match = /^(\d+(?:\.\d+)?)([MG])$/.exec(size ?? "");
    return match ? Number(match[1]) * (match[2] === "G" ? 1024 : 1) : Number.NaN;
  };

  test("every container has a CPU and memory limit, and its log rotated by Docker", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      const limits = service.deploy?.resources?.limits;
      expect({ name, cpus: cpus(service) > 0, memory: mebibytes(limits?.memory) > 0 }).toEqual({
        name,
        cpus: true,
        memory: true,
      });
      expect({ name, logging: service.logging }).toEqual({
        name,
        logging: { driver: "json-file", options: { "max-size": "10m", "max-file": "5" } },
      });
    }
  });

  // The sizing plan for an 8 vCPU / 16 GB host: Traefik 0.25/128M, auth 2 x 0.25/128M, chat
  // 2 x 1.0/1G, agent 2 x 0.75/512M, billing 0.25/128M, PostgreSQL 1.0/1G, Redis 0.25/256M,
  // Qdrant 0.5/512M. Shares move between services (auth got more CPU for logins, storage and
  // plugins came out of agent's), the total may not grow.
  test("the MVP set (edge, services x replicas, data stores) stays within the sizing plan's total", () => {
    const mvp = [
      "traefik",
      "auth-service",
      "chat-service",
      "agent-service",
      "billing-service",
      "storage-service",
      "plugins-service",
      "db",
      "redis",
      "qdrant",
    ];
    const replicas = (service: ComposeService) => service.deploy?.replicas ?? 1;
    const total = mvp.reduce(
      (sum, name) => {
        const service = compose.services[name] as ComposeService;
        return {
          cpus: sum.cpus + cpus(service) * replicas(service),
          mebibytes: sum.mebibytes + mebibytes(service.deploy?.resources?.limits?.memory) * replicas(service),
        };
      },
      { cpus: 0, mebibytes: 0 },
    );
    const plan = {
      cpus: 0.25 + 2 * 0.25 + 2 * 1.0 + 2 * 0.75 + 0.25 + 1.0 + 0.25 + 0.5,
      mebibytes: 128 * 4 + 2 * 1024 + 2 * 512 + 1024 + 256 + 512,
    };
    expect(total.cpus).toBeLessThanOrEqual(plan.cpus + 1e-9);
    expect(total.mebibytes).toBeLessThanOrEqual(plan.mebibytes);
    // Everything, monitoring (Prometheus, Alertmanager, exporters, Loki, Alloy, Grafana) and
    // operations included, fits the host with room for the OS.
    const all = Object.values(compose.services).reduce(
      (sum, service) => ({
        cpus: sum.cpus + cpus(service) * replicas(service),
        mebibytes: sum.mebibytes + mebibytes(service.deploy?.resources?.limits?.memory) * replicas(service),
      }),
      { cpus: 0, mebibytes: 0 },
    );
    expect(all.cpus).toBeLessThanOrEqual(8);
    expect(all.mebibytes).toBeLessThanOrEqual(12 * 1024);
  });

  // One open file per device socket: chat's memory limit lets a replica hold ~40,000 idle devices
  // (docs/capacity.md), more than the daemon's default limit may allow. Bun raises soft to hard.
  test("chat may hold at least 65536 open files, soft and hard", () => {
    const nofile = (compose.services["chat-service"] as ComposeService).ulimits?.nofile;
    const { soft, hard } = typeof nofile === "number" ? { soft: nofile, hard: nofile } : (nofile ?? {});
    expect({ soft, hard }).toEqual({ soft: expect.any(Number), hard: expect.any(Number) });
    expect(soft).toBeGreaterThanOrEqual(65536);
    expect(hard).toBeGreaterThanOrEqual(soft as number);
  });

  test("auth gets at least the CPU bench/RESULTS.md sized it for", () => {
    expect(cpus(compose.services["auth-service"] as ComposeService)).toBeGreaterThanOrEqual(0.5);
  });

  test("Redis refuses writes at maxmemory before the kernel kills it at its limit", () => {
    const redis = compose.services.redis as ComposeService;
    const maxmemory = redis.command?.[(redis.command?.indexOf("--maxmemory") ?? -2) + 1] ?? "";
    const limit = mebibytes(redis.deploy?.resources?.limits?.memory);
    expect(Number(/^(\d+)mb$/.exec(maxmemory)?.[1])).toBeLessThanOrEqual(limit * 0.8);
  });

  test("Loki reads the repository's configuration, which deletes lines past its retention", () => {
    const loki = compose.services.loki as ComposeService;
    expect(loki.volumes).toContain("./infra/loki/config.yaml:/etc/loki/config.yaml:ro");
    expect(loki.command).toEqual(["-config.file=/etc/loki/config.yaml"]);
    const config = readYaml<{
      limits_config: { retention_period: string };
      compactor: { retention_enabled: boolean; delete_request_store: string };
      schema_config: { configs: Array<{ index: { period: string } }> };
    }>("infra/loki/config.yaml");
    expect(config.compactor).toMatchObject({ retention_enabled: true, delete_request_store: "filesystem" });
    const hours = Number(/^(\d+)h$/.exec(config.limits_config.retention_period)?.[1]);
    // Loki requires a multiple of the index period (24 h).
    expect(hours % 24).toBe(0);
    expect(hours).toBeGreaterThanOrEqual(7 * 24);
    expect(config.schema_config.configs.map((each) => each.index.period)).toEqual(["24h"]);
  });
});

describe("key rotation under Compose", () => {
  test("every app service mounts the extra public keys file and reads it, so rotation needs no edit of compose.yaml", () => {
    expect(compose.secrets.jwt_extra_public_keys).toEqual({ file: "./infra/keys/jwt_extra_public.pem" });
    for (const [composeName, service] of appServices) {
      expect({ composeName, mounted: service.secrets?.includes("jwt_extra_public_keys") }).toEqual({
        composeName,
        mounted: true,
      });
      expect(environmentOf(service).JWT_EXTRA_PUBLIC_KEY_FILES).toBe("/run/secrets/jwt_extra_public_keys");
    }
  });

  test("the procedure touches only files Compose mounts", () => {
    const procedure = readFileSync("docs/key-rotation.md", "utf8");
    const mounted = new Set(Object.values(compose.secrets).map(({ file }) => (file ?? "").replace(/^\.\//, "")));
    const touched = [...procedure.matchAll(/(?<![\w/])infra\/keys\/(jwt_[a-z_]+\.pem|master\.key)/g)].map(
      (match) => `infra/keys/${match[1]}`,
    );
    expect(touched.length).toBeGreaterThan(0);
    expect([...new Set(touched)].filter((file) => !mounted.has(file))).toEqual([]);
  });
});
