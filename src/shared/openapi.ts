import { z } from "zod";
import { apiSchemas, NoContent } from "./contract";

/*
 * The OpenAPI 3.1 document of a running application, built from its routes: each route's zod
 * `params`, `query`, `body` and `response` and its `detail` (summary, tags, security). Request
 * bodies are JSON only (the sanitizer answers anything else with 415); schemas registered in
 * `apiSchemas` are emitted once under `components.schemas` and referenced by name.
 */

type Schema = Record<string, unknown>;

interface RouteDetail {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  hide?: boolean;
  /** Extra response content (e.g. a second media type), merged into the generated responses. */
  responses?: Record<string, { description?: string; content?: Record<string, { schema: Schema }> }>;
  [key: string]: unknown;
}

interface RouteHooks {
  params?: unknown;
  query?: unknown;
  body?: unknown;
  response?: unknown;
  detail?: RouteDetail;
}

export interface DocumentedRoute {
  method: string;
  path: string;
  hooks?: RouteHooks;
}

export interface OpenApiOptions {
  title: string;
  version: string;
  description?: string;
}

const STATUS_TEXT: Record<string, string> = {
  "200": "OK",
  "201": "Created",
  "202": "Accepted",
  "204": "No content",
  "400": "The body is not valid JSON (`malformed_body`) or the request is otherwise malformed",
  "401": "Missing, invalid or expired credentials",
  "403": "Not allowed for this user or tier (`tier_insufficient`, `config_limit_reached`...)",
  "404": "No such resource, or it belongs to someone else",
  "405": "The path exists, but not with this method (`Allow` names those that do)",
  "409": "Conflicts with the resource's current state",
  "413": "The body is larger than this route accepts (`payload_too_large`)",
  "415": "The body is not `application/json` (`unsupported_media_type`)",
  "422": "The request failed validation (`validation_failed`, with `details`)",
  "429": "A rate limit, quota or lockout: retry after `Retry-After` seconds",
  "502": "An upstream provider (model, payment) failed",
  "503": "A dependency is unavailable: retry after `Retry-After` seconds",
};

const RETRY_AFTER = { "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" } } };

const isZod = (value: unknown): value is z.ZodType => value instanceof z.ZodType;

/** Turns zod schemas into OpenAPI schemas, collecting named ones into `components.schemas`. */
class SchemaCollector {
  readonly components: Record<string, Schema> = {};

  convert(schema: z.ZodType, io: "input" | "output"): Schema {
    const converted = z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      metadata: apiSchemas,
      unrepresentable: "any",
    }) as Schema;
    const { $defs = {}, $schema: _dialect, ...root } = converted as Schema & { $defs?: Record<string, Schema> };
    // A model whose input and output forms differ (defaults, open nested objects) is used both in
    // requests and in responses: its second form gets a suffixed name of its own.
    const names = new Map<string, string>();
    for (const [name, definition] of Object.entries($defs)) {
      const taken = this.components[name] && !this.fits(name, toComponentRefs(definition, new Map()));
      names.set(name, taken ? `${name}${io === "output" ? "Output" : "Input"}` : name);
    }
    for (const [name, definition] of Object.entries($defs)) {
      this.add(names.get(name) ?? name, toComponentRefs(definition, names));
    }
    return toComponentRefs(root, names);
  }

  private fits(name: string, definition: Schema): boolean {
    const existing = this.components[name];
    return !existing || JSON.stringify(existing) === JSON.stringify(definition);
  }

  private add(name: string, definition: Schema): void {
    if (!this.fits(name, definition)) throw new Error(`schema ${name} has more than two shapes`);
    this.components[name] = definition;
  }
}

/** Points zod's local `$defs` references at the components, under their (possibly new) names. */
function toComponentRefs(schema: Schema, names: Map<string, string>): Schema {
  const text = JSON.stringify(schema).replace(
    /"#\/\$defs\/([^"]+)"/g,
    (_match, name: string) => `"#/components/schemas/${names.get(name) ?? name}"`,
  );
  return JSON.parse(text) as Schema;
}

/** `/configs/:id` -> `/configs/{id}`. */
const openApiPath = (path: string) => path.replace(/:([^/]+)/g, "{$1}");

const operationId = (method: string, path: string) =>
  method.toLowerCase() +
  path
    .replace(/^\/api\/v\d+/, "")
    .split(/[/.-]/)
    .filter(Boolean)
    .map((part) => (part.startsWith(":") ? `By${capitalize(part.slice(1))}` : capitalize(part)))
    .join("");

const capitalize = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

function parameters(collector: SchemaCollector, route: DocumentedRoute): Schema[] {
  const result: Schema[] = [];
  const { params, query } = route.hooks ?? {};
  const pathSchema = isZod(params) ? collector.convert(params, "input") : undefined;
  for (const match of route.path.matchAll(/:([^/]+)/g)) {
    const name = match[1] as string;
    const properties = pathSchema?.properties as Record<string, Schema> | undefined;
    result.push({ name, in: "path", required: true, schema: properties?.[name] ?? { type: "string" } });
  }
  if (isZod(query)) {
    const converted = collector.convert(query, "input");
    const required = new Set((converted.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries((converted.properties ?? {}) as Record<string, Schema>)) {
      const { description, ...rest } = schema;
      result.push({
        name,
        in: "query",
        required: required.has(name),
        schema: rest,
        ...(description ? { description } : {}),
      });
    }
  }
  return result;
}

function responses(collector: SchemaCollector, route: DocumentedRoute): Record<string, Schema> {
  const declared = route.hooks?.response;
  const byStatus: Record<string, unknown> = isZod(declared)
    ? { 200: declared }
    : ((declared as Record<string, unknown> | undefined) ?? {});
  const result: Record<string, Schema> = {};
  for (const [status, schema] of Object.entries(byStatus)) {
    if (!isZod(schema)) continue;
    const description = STATUS_TEXT[status] ?? `Status ${status}`;
    const headers = status === "429" || status === "503" ? { headers: RETRY_AFTER } : {};
    result[status] =
      schema === NoContent
        ? { description }
        : { description, ...headers, content: { "application/json": { schema: collector.convert(schema, "output") } } };
  }
  for (const [status, extra] of Object.entries(route.hooks?.detail?.responses ?? {})) {
    const current = result[status] ?? { description: STATUS_TEXT[status] ?? `Status ${status}` };
    result[status] = {
      ...current,
      ...(extra.description ? { description: extra.description } : {}),
      content: { ...(current.content as Schema | undefined), ...extra.content },
    };
  }
  return result;
}

function operation(collector: SchemaCollector, route: DocumentedRoute): Schema {
  const { hide: _hide, responses: _extra, ...detail } = route.hooks?.detail ?? {};
  const result: Schema = { operationId: operationId(route.method, route.path), ...detail };
  const params = parameters(collector, route);
  if (params.length > 0) result.parameters = params;
  const body = route.hooks?.body;
  if (isZod(body)) {
    result.requestBody = {
      required: !body.safeParse(undefined).success,
      content: { "application/json": { schema: collector.convert(body, "input") } },
    };
  }
  result.responses = responses(collector, route);
  return result;
}

const DOCUMENTED_METHODS = new Set(["GET", "PUT", "POST", "DELETE", "PATCH"]);

/** The OpenAPI 3.1 document of `routes` (WebSocket and hidden routes left out). */
export function openApiDocument(routes: readonly DocumentedRoute[], options: OpenApiOptions) {
  const collector = new SchemaCollector();
  const paths: Record<string, Record<string, Schema>> = {};
  const tags = new Set<string>();
  for (const route of routes) {
    if (!DOCUMENTED_METHODS.has(route.method) || route.hooks?.detail?.hide) continue;
    const path = openApiPath(route.path);
    paths[path] ??= {};
    (paths[path] as Record<string, Schema>)[route.method.toLowerCase()] = operation(collector, route);
    for (const tag of route.hooks?.detail?.tags ?? []) tags.add(tag);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: options.title,
      version: options.version,
      ...(options.description ? { description: options.description } : {}),
    },
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(collector.components).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "The access token from `POST /api/v1/auth/login`, `register` or `refresh`",
        },
      },
    },
  };
}
