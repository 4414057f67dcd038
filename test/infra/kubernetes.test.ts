// Strategy: no cluster runs here, so deploy/kubernetes is parsed and checked the way
// compose.test.ts checks compose.yaml: every object against its kind's JSON schema (kubernetes-models
// for the built-in kinds, @kubernetes-models/traefik and /prometheus-operator for the CRDs), then
// against the code and compose.yaml: env.ts's production requirements resolved through ConfigMaps,
// Secrets and mounted files, the probe paths fetched from a service started on a real test platform,
// the routes each service's module serves, Traefik's routers and middlewares, the drain timings.
// `kubectl kustomize` builds the folder when kubectl is installed; without it that check is skipped.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { IngressRoute, Middleware, ServersTransport } from "@kubernetes-models/traefik/traefik.io/v1alpha1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, Service } from "kubernetes-models/v1";
import { parse, parseAllDocuments } from "yaml";
import { createAuthService } from "../../src/auth";
import { Env, loadEnv, requiredInProduction, SERVICE_NAMES, type ServiceName } from "../../src/shared/env";
import { createTestContext } from "../../src/shared/testing";
import { type Router, routersOf, unservedMatchers } from "./compose-check";
import { servedRoutes as servedRoutesOf } from "./served-routes";

const DIR = "deploy/kubernetes";
const NAMESPACE = "adiuva";

// Only the fields these checks read; the schemas validate the rest.
interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  // biome-ignore lint/suspicious/noExplicitAny: each check narrows the spec it reads
  spec?: any;
  data?: Record<string, string>;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string; optional?: boolean };
      configMapKeyRef?: { name: string; key: string };
      fieldRef?: { fieldPath: string };
    };
  }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  emptyDir?: object;
  projected?: { sources: Array<{ secret?: { name: string; items?: Array<{ key: string; path: string }> } }> };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
}
interface ComposeService {
  environment?: Record<string, string | number>;
  labels?: string[];
  profiles?: string[];
  deploy?: { replicas?: number; resources?: { limits?: { cpus?: string; memory?: string } } };
}

const readYaml = <T>(path: string): T => parse(readFileSync(path, "utf8"), { merge: true }) as T;
const kustomization = readYaml<{
  namespace?: string;
  resources: string[];
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
}>(`${DIR}/kustomization.yaml`);

/** Every object of every file the kustomization lists, with the file it came from. */
function loadObjects(): Array<K8sObject & { file: string }> {
  return kustomization.resources.flatMap((file) => {
    const documents = parseAllDocuments(readFileSync(`${DIR}/${file}`, "utf8"));
    return (Array.isArray(documents) ? documents : [documents]).flatMap((document) => {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message}`);
      const object = document.toJS() as K8sObject | null;
      return object ? [{ ...object, file }] : [];
    });
  });
}
const objects = loadObjects();
const ofKind = (kind: string) => objects.filter((object) => object.kind === kind);
const named = (kind: string, name: string) => ofKind(kind).find((object) => object.metadata.name === name);

// The class that validates each kind against its JSON schema.
const models: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "traefik.io/v1alpha1/IngressRoute": IngressRoute,
  "traefik.io/v1alpha1/Middleware": Middleware,
  "traefik.io/v1alpha1/ServersTransport": ServersTransport,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};
/** The schema's verdict: undefined when valid, else its first complaint. */
function schemaError(object: K8sObject): string | undefined {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) return `no schema for ${object.apiVersion} ${object.kind}`;
  const { file: _file, ...manifest } = object as K8sObject & { file?: string };
  try {
    new Model(manifest as never).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const compose = readYaml<{ services: Record<string, ComposeService> }>("compose.yaml");
const composeApps = Object.entries(compose.services).filter(([, service]) => service.environment?.SERVICE_NAME);
const composeNameOf = (name: ServiceName) =>
  composeApps.find(([, service]) => service.environment?.SERVICE_NAME === name)?.[0] as string;
const deploymentName = (name: ServiceName) => `${name}-service`;
const deployments = new Map(
  SERVICE_NAMES.map((name) => [name, named("Deployment", deploymentName(name)) as K8sObject | undefined]),
);
const containerOf = (name: ServiceName) => deployments.get(name)?.spec.template.spec.containers[0] as Container;
const podSpecOf = (name: ServiceName) =>
  deployments.get(name)?.spec.template.spec as {
    terminationGracePeriodSeconds?: number;
    securityContext?: Record<string, unknown>;
    volumes?: Volume[];
    automountServiceAccountToken?: boolean;
    enableServiceLinks?: boolean;
  };
const podLabelsOf = (name: ServiceName) =>
  (deployments.get(name)?.spec.template.metadata.labels ?? {}) as Record<string, string>;
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/**
 * The Secrets the README's `kubectl create secret` commands make, with each key's value
 * (`--from-literal`) or source file (`--from-file`): what the Deployments may reference.
 */
function secretsFromReadme(): Map<string, Map<string, string>> {
  const text = readFileSync(`${DIR}/README.md`, "utf8").replace(/\\\n\s*/g, " ");
  const secrets = new Map<string, Map<string, string>>();
  for (const [line] of text.matchAll(/kubectl -n adiuva create secret \S+ [^\n]+/g)) {
    const [, type, name] = /create secret (\S+) ([\w.-]+)/.exec(line) ?? [];
    const keys = new Map<string, string>();
    if (type === "tls") keys.set("tls.crt", "").set("tls.key", "");
    for (const match of line.matchAll(/--from-(file|literal)=([\w.-]+)=('[^']*'|\S+)/g)) {
      keys.set(match[2] as string, (match[3] as string).replace(/^'(.*)'$/, "$1"));
    }
    if (name) secrets.set(name, keys);
  }
  return secrets;
}
const readmeSecrets = secretsFromReadme();

/** What one Deployment's container sees: its environment and the files mounted from Secrets. */
function resolve(name: ServiceName) {
  const container = containerOf(name);
  const environment: Record<string, string> = {};
  const problems: string[] = [];
  for (const source of container.envFrom ?? []) {
    const configMap = source.configMapRef && named("ConfigMap", source.configMapRef.name);
    if (source.configMapRef && !configMap) problems.push(`no ConfigMap ${source.configMapRef.name}`);
    Object.assign(environment, configMap?.data ?? {});
    if (source.secretRef) problems.push(`envFrom secretRef ${source.secretRef.name}: list the keys instead`);
  }
  for (const variable of container.env ?? []) {
    const secret = variable.valueFrom?.secretKeyRef;
    const fromConfigMap = variable.valueFrom?.configMapKeyRef;
    if (variable.value !== undefined) environment[variable.name] = variable.value;
    else if (variable.valueFrom?.fieldRef)
      environment[variable.name] = `field:${variable.valueFrom.fieldRef.fieldPath}`;
    else if (fromConfigMap) {
      const value = named("ConfigMap", fromConfigMap.name)?.data?.[fromConfigMap.key];
      if (value === undefined) problems.push(`${variable.name}: no ${fromConfigMap.name}/${fromConfigMap.key}`);
      else environment[variable.name] = value;
    } else if (secret) {
      const value = readmeSecrets.get(secret.name)?.get(secret.key);
      if (value !== undefined) environment[variable.name] = value;
      else if (!secret.optional) problems.push(`${variable.name}: the README creates no ${secret.name}/${secret.key}`);
    }
  }
  // Files under each mount path, with the Secret key each comes from.
  const volumes = new Map((podSpecOf(name).volumes ?? []).map((volume) => [volume.name, volume]));
  const files = new Map<string, { secret: string; key: string }>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    const sources = [
      ...(volume?.projected?.sources.flatMap((source) => (source.secret ? [source.secret] : [])) ?? []),
      ...(volume?.secret ? [{ name: volume.secret.secretName, items: volume.secret.items }] : []),
    ];
    for (const source of sources) {
      for (const item of source.items ?? []) {
        files.set(`${mount.mountPath}/${item.path}`, { secret: source.name, key: item.key });
      }
    }
  }
  return { container, environment, files, problems };
}

// Routes each service really serves, read from its module built on a real platform.
const ctx = await createTestContext();
afterAll(() => ctx.close());
const servedRoutes = await servedRoutesOf(ctx);

describe("the kustomization", () => {
  test("lists files that exist, and every manifest of the folder", () => {
    expect(kustomization.namespace).toBe(NAMESPACE);
    expect(kustomization.resources.filter((file) => !existsSync(`${DIR}/${file}`))).toEqual([]);
    // Helm values for Traefik are not a manifest.
    const manifests = readdirSync(DIR).filter(
      (file) => /\.ya?ml$/.test(file) && !["kustomization.yaml", "traefik-values.yaml"].includes(file),
    );
    expect([...manifests].sort()).toEqual([...kustomization.resources].sort());
  });

  test("every object is in the namespace adiuva, and names are unique per kind", () => {
    expect(named("Namespace", NAMESPACE)).toBeDefined();
    for (const object of objects.filter((each) => each.kind !== "Namespace")) {
      expect({ object: `${object.kind}/${object.metadata.name}`, namespace: object.metadata.namespace }).toEqual({
        object: `${object.kind}/${object.metadata.name}`,
        namespace: NAMESPACE,
      });
    }
    const keys = objects.map((object) => `${object.kind}/${object.metadata.name}`);
    expect(keys.length).toBe(new Set(keys).size);
  });

  test("one image entry per service, the image its Deployment runs (the Dockerfile's name for it)", () => {
    expect((kustomization.images ?? []).map((image) => image.name).sort()).toEqual(
      SERVICE_NAMES.map((name) => `adiuva/${name}-service`).sort(),
    );
    for (const name of SERVICE_NAMES) expect(containerOf(name)?.image).toBe(`adiuva/${name}-service`);
  });

  const kubectl = Bun.which("kubectl");
  if (!kubectl) console.log("kubectl is not installed: the `kubectl kustomize` build is skipped");
  test.skipIf(!kubectl)("kubectl kustomize builds it: the same objects, images named by the entries", () => {
    const result = Bun.spawnSync([kubectl as string, "kustomize", DIR], { stdout: "pipe", stderr: "pipe" });
    expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const built = parseAllDocuments(result.stdout.toString()).map((document) => document.toJS() as K8sObject);
    const key = (object: K8sObject) => `${object.kind}/${object.metadata.name}`;
    expect(built.map(key).sort()).toEqual(objects.map(key).sort());
    const images = built
      .filter((object) => object.kind === "Deployment")
      .map((object) => (object.spec.template.spec.containers[0] as Container).image);
    const expected = (kustomization.images ?? []).map(
      (image) => `${image.newName ?? image.name}${image.newTag ? `:${image.newTag}` : ""}`,
    );
    expect(images.sort()).toEqual(expected.sort());
  });
});

describe("schemas", () => {
  test("every object is of a known kind and valid against its JSON schema", () => {
    expect(objects.length).toBeGreaterThan(20);
    const invalid = objects
      .map((object) => ({
        object: `${object.file}: ${object.kind}/${object.metadata.name}`,
        error: schemaError(object),
      }))
      .filter(({ error }) => error !== undefined);
    expect(invalid).toEqual([]);
  });

  test("the validators refuse what the API server would refuse", () => {
    const deployment = structuredClone(deployments.get("chat") as K8sObject);
    deployment.spec.replicas = "2";
    expect(schemaError(deployment)).toContain("replicas");
    const route = structuredClone(ofKind("IngressRoute")[0] as K8sObject);
    route.spec.routes[0].kind = "Rul";
    expect(schemaError(route)).toContain("kind");
    const monitor = structuredClone(ofKind("ServiceMonitor")[0] as K8sObject);
    delete monitor.spec.selector;
    expect(schemaError(monitor)).toContain("selector");
  });
});

describe("Deployments against the code", () => {
  test("one per service, each with its SERVICE_NAME", () => {
    expect(ofKind("Deployment").length).toBe(SERVICE_NAMES.length);
    for (const name of SERVICE_NAMES) expect(resolve(name).environment.SERVICE_NAME).toBe(name);
  });

  for (const name of SERVICE_NAMES) {
    test(`${name}: every variable required in production is set, and the whole environment is valid`, () => {
      const { environment, problems } = resolve(name);
      expect(problems).toEqual([]);
      expect(environment.NODE_ENV).toBe("production");
      expect(requiredInProduction[name].filter((key) => !environment[key])).toEqual([]);
      expect(Object.keys(environment).filter((key) => !(key in Env.shape))).toEqual([]);
      expect(() => loadEnv(environment)).not.toThrow();
    });

    test(`${name}: every *_FILE variable names a file mounted from a Secret the README creates`, () => {
      const { environment, files } = resolve(name);
      const paths = Object.entries(environment)
        .filter(([key, value]) => /_FILES?$/.test(key) && value)
        .flatMap(([key, value]) => value.split(",").map((path) => ({ key, path: path.trim() })));
      expect(paths.map(({ key }) => key)).toEqual(
        expect.arrayContaining(["DATABASE_PASSWORD_FILE", "JWT_PUBLIC_KEY_FILE", "JWT_EXTRA_PUBLIC_KEY_FILES"]),
      );
      for (const { key, path } of paths) {
        const file = files.get(path);
        expect({ key, path, mounted: file !== undefined }).toEqual({ key, path, mounted: true });
        expect({ key, created: readmeSecrets.get(file?.secret ?? "")?.has(file?.key ?? "") }).toEqual({
          key,
          created: true,
        });
      }
      // The secret files Compose mounts for this service, at the same paths.
      const composeEnvironment = compose.services[composeNameOf(name)]?.environment ?? {};
      for (const [key, value] of Object.entries(composeEnvironment)) {
        if (key.endsWith("_FILE") || key.endsWith("_FILES"))
          expect({ key, value: environment[key] }).toEqual({ key, value: String(value) });
      }
    });

    test(`${name}: probes on the paths and port the server answers, ports named http and metrics`, () => {
      const { container, environment } = resolve(name);
      const ports = Object.fromEntries((container.ports ?? []).map((port) => [port.name, port.containerPort]));
      expect(ports).toEqual({ http: Number(environment.PORT), metrics: Number(environment.METRICS_PORT) });
      expect(ports.http).not.toBe(ports.metrics);
      expect(container.readinessProbe?.httpGet).toEqual({ path: "/ready?scope=instance", port: "http" });
      expect(container.livenessProbe?.httpGet).toEqual({ path: "/health", port: "http" });
      expect(container.startupProbe?.httpGet).toEqual({ path: "/health", port: "http" });
      // The same check Traefik makes under Compose.
      const composeCheck = (compose.services[composeNameOf(name)]?.labels ?? [])
        .map((label) => /\.loadbalancer\.healthcheck\.path=(.+)$/.exec(label)?.[1])
        .find(Boolean);
      expect(container.readinessProbe?.httpGet?.path).toBe(composeCheck as string);
    });

    test(`${name}: the grace period outlasts the drain delay, the grace and the modules' backstop`, () => {
      const { environment } = resolve(name);
      const drainMs = Env.shape.SHUTDOWN_DRAIN_DELAY_MS.parse(environment.SHUTDOWN_DRAIN_DELAY_MS);
      const graceMs = Env.shape.SHUTDOWN_GRACE_MS.parse(environment.SHUTDOWN_GRACE_MS);
      // The drain delay must be long enough for Traefik to see the endpoint gone (Compose: 5 s).
      expect(drainMs).toBeGreaterThanOrEqual(5000);
      const periodMs = (podSpecOf(name).terminationGracePeriodSeconds ?? 30) * 1000;
      // src/shared/server.ts: a module's stop is bounded by SHUTDOWN_GRACE_MS + 5000.
      expect(periodMs).toBeGreaterThan(drainMs + graceMs + 5000);
      // Readiness notices the drain within the delay.
      const readiness = resolve(name).container.readinessProbe;
      expect(
        ((readiness?.periodSeconds ?? 10) * (readiness?.failureThreshold ?? 3) + (readiness?.timeoutSeconds ?? 1)) *
          1000,
      ).toBeLessThanOrEqual(drainMs);
    });

    test(`${name}: CPU and memory as compose.yaml limits them, requested in full`, () => {
      // A quantity may be a YAML number (`cpu: 1`).
      const cpu = (value: string | number = "") => {
        const text = String(value);
        return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
      };
      const mebibytes = (value: string | number = "") => {
        const match = /^(\d+(?:\.\d+)?)(Mi|Gi|M|G)$/.exec(String(value));
        return match ? Number(match[1]) * (match[2]?.startsWith("G") ? 1024 : 1) : Number.NaN;
      };
      const limits = compose.services[composeNameOf(name)]?.deploy?.resources?.limits;
      const { resources } = resolve(name).container;
      for (const each of [resources?.requests, resources?.limits]) {
        expect({ cpu: cpu(each?.cpu), memory: mebibytes(each?.memory) }).toEqual({
          cpu: Number(limits?.cpus),
          memory: mebibytes(limits?.memory),
        });
      }
    });

    test(`${name}: non-root as the image's user, no privileges, read-only root with /tmp writable`, () => {
      const dockerfileUser = /^USER (\d+):(\d+)$/m.exec(readFileSync("Dockerfile", "utf8"));
      const pod = podSpecOf(name);
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: Number(dockerfileUser?.[1]),
        runAsGroup: Number(dockerfileUser?.[2]),
      });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.enableServiceLinks).toBe(false);
      const { container } = resolve(name);
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      const tmp = container.volumeMounts?.find((mount) => mount.mountPath === "/tmp");
      expect(pod.volumes?.find((volume) => volume.name === tmp?.name)?.emptyDir).toBeDefined();
      for (const mount of container.volumeMounts ?? []) {
        if (mount.mountPath !== "/tmp")
          expect({ mount: mount.mountPath, readOnly: mount.readOnly }).toEqual({
            mount: mount.mountPath,
            readOnly: true,
          });
      }
    });
  }

  test("every Secret the README creates is used, and every one used is created", () => {
    const used = new Set<string>();
    for (const name of SERVICE_NAMES) {
      for (const { secret, key } of resolve(name).files.values()) used.add(`${secret}/${key}`);
      for (const variable of containerOf(name).env ?? []) {
        const ref = variable.valueFrom?.secretKeyRef;
        if (ref) used.add(`${ref.name}/${ref.key}`);
      }
    }
    for (const route of ofKind("IngressRoute")) {
      if (route.spec.tls?.secretName)
        used.add(`${route.spec.tls.secretName}/tls.crt`).add(`${route.spec.tls.secretName}/tls.key`);
    }
    const created = [...readmeSecrets].flatMap(([secret, keys]) => [...keys.keys()].map((key) => `${secret}/${key}`));
    expect(created.sort()).toEqual([...used].sort());
  });

  test("a started service answers each probe path on its public port, and /metrics only on the other", async () => {
    const auth = await ctx.start([createAuthService], { service: "auth" });
    const container = containerOf("auth");
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
      const response = await fetch(`${auth.url}${probe?.httpGet?.path}`);
      await response.body?.cancel();
      expect({ path: probe?.httpGet?.path, status: response.status }).toEqual({
        path: probe?.httpGet?.path,
        status: 200,
      });
    }
    const path = named("ServiceMonitor", "auth-service")?.spec.endpoints[0].path as string;
    const scrape = await fetch(`http://127.0.0.1:${auth.metricsPort}${path}`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain("http_requests_total");
    const publicMetrics = await fetch(`${auth.url}${path}`);
    await publicMetrics.body?.cancel();
    expect(publicMetrics.status).toBe(404);
  });
});

describe("Services, budgets, autoscalers, monitors", () => {
  for (const name of SERVICE_NAMES) {
    test(`${name}: a Service, a PodDisruptionBudget and a ServiceMonitor select its pods`, () => {
      const labels = podLabelsOf(name);
      const service = named("Service", deploymentName(name));
      expect(service?.spec.type ?? "ClusterIP").toBe("ClusterIP");
      expect(selects(service?.spec.selector, labels)).toBe(true);
      const { container } = resolve(name);
      const containerPorts = new Set((container.ports ?? []).map((port) => port.name));
      const servicePorts = (service?.spec.ports ?? []) as Array<{ name: string; targetPort: string }>;
      expect(servicePorts.map((port) => port.name).sort()).toEqual(["http", "metrics"]);
      for (const port of servicePorts) expect(containerPorts.has(port.targetPort)).toBe(true);

      const budget = ofKind("PodDisruptionBudget").find((each) => selects(each.spec.selector.matchLabels, labels));
      expect(budget).toBeDefined();
      // A budget of minAvailable 1 on one replica would block every node drain.
      expect(budget?.spec.maxUnavailable).toBe(1);

      const monitor = ofKind("ServiceMonitor").find((each) =>
        selects(each.spec.selector.matchLabels, service?.metadata.labels ?? {}),
      );
      expect(monitor?.spec.endpoints).toEqual([
        expect.objectContaining({
          port: "metrics",
          path: "/metrics",
          // The labels infra/prometheus/prometheus.yml gives under Compose, which alerts.yml reads.
          relabelings: expect.arrayContaining([
            expect.objectContaining({ targetLabel: "job", replacement: "adiuva" }),
            expect.objectContaining({ targetLabel: "compose_service", replacement: composeNameOf(name) }),
          ]),
        }),
      ]);
    });
  }

  test("the Prometheus job the relabelling names is the one alerts.yml reads under Compose", () => {
    const config = readYaml<{
      scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[] }> }>;
    }>("infra/prometheus/prometheus.yml");
    const job = config.scrape_configs.find((each) => each.job_name === "adiuva");
    expect(job?.dns_sd_configs?.flatMap((each) => each.names).sort()).toEqual(
      SERVICE_NAMES.map((name) => composeNameOf(name)).sort(),
    );
  });

  test("autoscalers target chat and agent only, on CPU, from compose.yaml's replicas; the others keep them", () => {
    const autoscalers = ofKind("HorizontalPodAutoscaler");
    const targets = autoscalers.map((each) => each.spec.scaleTargetRef);
    expect(targets.map((target) => `${target.kind}/${target.name}`).sort()).toEqual([
      "Deployment/agent-service",
      "Deployment/chat-service",
    ]);
    for (const name of SERVICE_NAMES) {
      const composeReplicas = compose.services[composeNameOf(name)]?.deploy?.replicas ?? 1;
      const autoscaler = autoscalers.find((each) => each.spec.scaleTargetRef.name === deploymentName(name));
      const deployment = deployments.get(name);
      if (autoscaler) {
        // The autoscaler owns the count: an apply must not reset it.
        expect({ name, replicas: deployment?.spec.replicas }).toEqual({ name, replicas: undefined });
        expect(autoscaler.spec.minReplicas).toBe(composeReplicas);
        expect(autoscaler.spec.maxReplicas).toBeGreaterThan(composeReplicas);
        expect(autoscaler.spec.metrics).toEqual([
          {
            type: "Resource",
            resource: { name: "cpu", target: { type: "Utilization", averageUtilization: expect.any(Number) } },
          },
        ]);
      } else {
        expect({ name, replicas: deployment?.spec.replicas }).toEqual({ name, replicas: composeReplicas });
      }
      // A rollout never lowers the ready count.
      expect(deployment?.spec.strategy?.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    }
  });

  test("PostgreSQL connections at every autoscaler's ceiling, during a rollout, stay under max_connections", () => {
    const pods = SERVICE_NAMES.reduce((sum, name) => {
      const autoscaler = ofKind("HorizontalPodAutoscaler").find(
        (each) => each.spec.scaleTargetRef.name === deploymentName(name),
      );
      const deployment = deployments.get(name);
      return (
        sum +
        (autoscaler?.spec.maxReplicas ?? deployment?.spec.replicas ?? 1) +
        deployment?.spec.strategy.rollingUpdate.maxSurge
      );
    }, 0);
    const pools = new Set(
      SERVICE_NAMES.map((name) => Env.shape.DATABASE_POOL_MAX.parse(resolve(name).environment.DATABASE_POOL_MAX)),
    );
    expect(pools.size).toBe(1);
    // PostgreSQL's default 100, 3 kept for superusers; a backup and a few psql sessions besides.
    expect(pods * [...pools][0]!).toBeLessThanOrEqual(97 - 1 - 5);
  });
});

describe("Traefik", () => {
  // The migration profile's catch-all towards the monolith stays a Compose concern.
  const composeRouters = composeApps
    .filter(([, service]) => !service.profiles?.includes("migration"))
    .flatMap(([, service]) =>
      routersOf(service.labels).map((router) => ({ ...router, service: String(service.environment?.SERVICE_NAME) })),
    ) as Array<Router & { service: ServiceName }>;
  const dynamic = readYaml<{ http: { middlewares: Record<string, object> } }>("infra/traefik/dynamic/middlewares.yml")
    .http.middlewares;
  const staticConfig = readYaml<{
    entryPoints: Record<
      string,
      {
        transport?: { respondingTimeouts?: object };
        forwardedHeaders?: { trustedIPs?: string[] };
        http?: { middlewares?: string[] };
      }
    >;
    serversTransport?: { forwardingTimeouts?: { idleConnTimeout?: string } };
  }>("infra/traefik/traefik.yml");
  interface IngressRouteRoute {
    match: string;
    priority?: number;
    middlewares?: Array<{ name: string }>;
    services: Array<{ name: string; port: string; serversTransport?: string }>;
    observability?: { accessLogs?: boolean };
  }
  const ingressRoutes = ofKind("IngressRoute");
  const routes = ingressRoutes.flatMap((each) => each.spec.routes as IngressRouteRoute[]);
  const normalise = (rule: string) => rule.replace(/\s+/g, " ").trim();

  test("the IngressRoute has one route per router of compose.yaml: same rule, priority, service and limits", () => {
    expect(routes.length).toBe(composeRouters.length);
    const entryMiddlewares = (staticConfig.entryPoints.websecure?.http?.middlewares ?? []).map((each) =>
      each.replace(/@file$/, ""),
    );
    for (const router of composeRouters) {
      const route = routes.find((each) => normalise(each.match) === normalise(router.rule));
      expect({ router: router.name, found: route !== undefined }).toEqual({ router: router.name, found: true });
      expect({ router: router.name, priority: route?.priority }).toEqual({
        router: router.name,
        priority: router.priority ? Number(router.priority) : undefined,
      });
      expect(route?.services).toEqual([
        { name: deploymentName(router.service), port: "http", serversTransport: "adiuva-upstream" },
      ]);
      // Compose's entry point middlewares go on every route, then the router's own.
      const wanted = [
        ...entryMiddlewares,
        ...(router.middlewares?.split(",") ?? []).map((each) => each.replace(/@file$/, "")),
      ];
      expect({ router: router.name, middlewares: route?.middlewares?.map((each) => each.name) }).toEqual({
        router: router.name,
        middlewares: wanted,
      });
      const noAccessLog = /observability\.accessLogs=false/.test(
        (compose.services[composeNameOf(router.service)]?.labels ?? []).find((label) =>
          label.includes(`routers.${router.name}.observability.accessLogs`),
        ) ?? "",
      );
      expect({ router: router.name, accessLogs: route?.observability?.accessLogs }).toEqual({
        router: router.name,
        accessLogs: noAccessLog ? false : undefined,
      });
    }
    for (const route of ingressRoutes) expect(route.spec.entryPoints).toEqual(["websecure"]);
  });

  for (const name of SERVICE_NAMES) {
    test(`every path matcher routed to ${name} is served by it`, () => {
      const mine = routes.filter((route) => route.services.some((each) => each.name === deploymentName(name)));
      expect(mine.length).toBeGreaterThan(0);
      for (const route of mine) {
        expect({ match: route.match, unserved: unservedMatchers(route.match, servedRoutes.get(name) ?? []) }).toEqual({
          match: route.match,
          unserved: [],
        });
      }
    });
  }

  test("each Middleware is infra/traefik/dynamic/middlewares.yml's, and every one a route names exists", () => {
    for (const middleware of ofKind("Middleware")) {
      expect({ name: middleware.metadata.name, spec: middleware.spec }).toEqual({
        name: middleware.metadata.name,
        spec: dynamic[middleware.metadata.name] as object,
      });
    }
    const defined = new Set(ofKind("Middleware").map((each) => each.metadata.name));
    const referenced = routes.flatMap((route) => (route.middlewares ?? []).map((each) => each.name));
    expect(referenced.filter((each) => !defined.has(each))).toEqual([]);
  });

  test("connections to the pods are dropped before Bun's own idle timeout, as traefik.yml says", () => {
    expect(named("ServersTransport", "adiuva-upstream")?.spec.forwardingTimeouts).toEqual({
      idleConnTimeout: staticConfig.serversTransport?.forwardingTimeouts?.idleConnTimeout,
    });
  });

  test("traefik-values.yaml gives the entry point traefik.yml's timeouts and trusted forwarders", () => {
    const values = readYaml<{
      ports: { websecure: { transport: { respondingTimeouts: object }; forwardedHeaders: { trustedIPs: string[] } } };
      service: { spec: { externalTrafficPolicy: string } };
    }>(`${DIR}/traefik-values.yaml`);
    const websecure = staticConfig.entryPoints.websecure;
    expect(values.ports.websecure.transport.respondingTimeouts).toEqual(
      websecure?.transport?.respondingTimeouts as object,
    );
    expect(values.ports.websecure.forwardedHeaders.trustedIPs).toEqual(
      websecure?.forwardedHeaders?.trustedIPs as string[],
    );
    // Without the client's address kept, Traefik would drop Cloudflare's X-Forwarded-For.
    expect(values.service.spec.externalTrafficPolicy).toBe("Local");
  });
});

describe("network policies", () => {
  const policies = ofKind("NetworkPolicy");
  interface Peer {
    podSelector?: { matchLabels?: Record<string, string> };
    namespaceSelector?: { matchLabels?: Record<string, string> };
    ipBlock?: { cidr: string };
  }
  interface Rule {
    from?: Peer[];
    to?: Peer[];
    ports?: Array<{ port: string | number }>;
  }
  const appliesTo = (labels: Record<string, string>) =>
    policies.filter((policy) => {
      const selector = policy.spec.podSelector.matchLabels as Record<string, string> | undefined;
      return !selector || Object.keys(selector).length === 0 || selects(selector, labels);
    });

  test("everything is denied unless allowed, in both directions", () => {
    expect(policies).toContainEqual(
      expect.objectContaining({ spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] } }),
    );
  });

  test("each service's http port takes Traefik only, its metrics port Prometheus only", () => {
    for (const name of SERVICE_NAMES) {
      const ingress = appliesTo(podLabelsOf(name)).flatMap((policy) => (policy.spec.ingress ?? []) as Rule[]);
      const sources = (port: string) =>
        ingress
          .filter((rule) => rule.ports?.some((each) => each.port === port))
          .flatMap((rule) => rule.from ?? [])
          .map((peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/name"]);
      expect({ name, http: sources("http"), metrics: sources("metrics") }).toEqual({
        name,
        http: ["traefik"],
        metrics: ["prometheus"],
      });
      // No rule admits every source, and every port a rule names is one the container has.
      expect(ingress.filter((rule) => !rule.from || !rule.ports)).toEqual([]);
    }
  });

  test("the services reach the data stores on the ports their URLs name, and only the services reach them", () => {
    const datastore = { "app.kubernetes.io/component": "datastore" };
    for (const name of SERVICE_NAMES) {
      const { environment } = resolve(name);
      const egress = appliesTo(podLabelsOf(name)).flatMap((policy) => (policy.spec.egress ?? []) as Rule[]);
      const toStores = egress.filter((rule) =>
        rule.to?.some((peer) => selects(peer.podSelector?.matchLabels, datastore)),
      );
      const ports = new Set(toStores.flatMap((rule) => (rule.ports ?? []).map((each) => Number(each.port))));
      for (const key of ["DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "QDRANT_URL"] as const) {
        if (!environment[key]) continue;
        const url = new URL(environment[key] as string);
        expect({ name, key, reached: ports.has(Number(url.port)) }).toEqual({ name, key, reached: true });
      }
    }
    const storeIngress = appliesTo(datastore).flatMap((policy) => (policy.spec.ingress ?? []) as Rule[]);
    const sources = storeIngress.flatMap((rule) => rule.from ?? []);
    expect(sources.length).toBeGreaterThan(0);
    for (const peer of sources) {
      expect(peer.namespaceSelector).toBeUndefined();
      expect(["api", "datastore"]).toContain(peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] as string);
    }
    for (const name of SERVICE_NAMES) expect(podLabelsOf(name)["app.kubernetes.io/component"]).toBe("api");
  });
});
