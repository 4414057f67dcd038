// Pure checks of compose.yaml against the code, kept apart so their own tests can feed them fixtures.

export interface Route {
  method: string;
  path: string;
}

export interface Router {
  name: string;
  rule: string;
  service?: string;
  entrypoints?: string;
  middlewares?: string;
  priority?: string;
}

/** The routers a container declares through `traefik.http.routers.<name>.<key>=<value>` labels. */
export function routersOf(labels: string[] | Record<string, string> | undefined): Router[] {
  const entries = Array.isArray(labels)
    ? labels.map((label) => {
        const at = label.indexOf("=");
        return [label.slice(0, at), label.slice(at + 1)] as const;
      })
    : Object.entries(labels ?? {});
  const routers = new Map<string, Record<string, string>>();
  for (const [key, value] of entries) {
    const match = /^traefik\.http\.routers\.([^.]+)\.(.+)$/.exec(key);
    if (!match) continue;
    const [, name, field] = match as unknown as [string, string, string];
    routers.set(name, { ...routers.get(name), [field]: value });
  }
  return [...routers].map(([name, fields]) => ({ name, rule: fields.rule ?? "", ...fields }));
}

/** Every `Path(...)` and `PathPrefix(...)` matcher in a Traefik v3 rule. */
export function pathMatchers(rule: string): Array<{ kind: "Path" | "PathPrefix"; path: string }> {
  return [...rule.matchAll(/\b(PathPrefix|Path)\(\s*[`"]([^`"]*)[`"]\s*\)/g)].map((match) => ({
    kind: match[1] as "Path" | "PathPrefix",
    path: match[2] as string,
  }));
}

const normalise = (path: string) => (path.length > 1 ? path.replace(/\/+$/, "") : path);

/**
 * The matchers of `rule` that no route serves: a `Path` must be a route's path, a `PathPrefix`
 * must cover a route at a segment boundary (`/api/v1/ws` covers `/api/v1/ws/device`, not `/api/v1/wsx`).
 */
export function unservedMatchers(rule: string, routes: Route[]): string[] {
  const paths = routes.map((route) => normalise(route.path));
  return pathMatchers(rule)
    .filter(({ kind, path }) => {
      const wanted = normalise(path);
      return kind === "Path"
        ? !paths.includes(wanted)
        : !paths.some((served) => served === wanted || served.startsWith(`${wanted}/`));
    })
    .map(({ kind, path }) => `${kind}(\`${path}\`)`);
}

export class MissingVariable extends Error {
  override name = "MissingVariable";
}

/** Compose's variable substitution: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`. */
export function interpolate(value: string, variables: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole, braced: string | undefined, operator: string | undefined, argument: string | undefined, bare) => {
      if (whole === "$$") return "$";
      const name = (braced ?? bare) as string;
      const current = variables[name];
      const unset = operator?.startsWith(":") ? !current : current === undefined;
      if (!unset) return current as string;
      if (operator?.endsWith("?")) throw new MissingVariable(`${name}: ${argument || "required"}`);
      if (operator?.endsWith("-")) return argument ?? "";
      return "";
    },
  );
}

/** KEY=VALUE lines of a dotenv file; comments and blank lines ignored. */
export function parseDotenv(text: string): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) variables[match[1] as string] = (match[2] as string).trim().replace(/^(["'])(.*)\1$/, "$2");
  }
  return variables;
}
