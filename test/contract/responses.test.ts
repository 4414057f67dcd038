// Every answer the services give matches the OpenAPI document: the whole stack runs with real data
// (an account, a conversation, a configuration, a subscription checkout), every route is called with
// good and bad input, with and without a token, and each response's status must be declared for
// its operation and its body must validate (ajv, JSON Schema 2020-12) against the declared schema.
// Also: other content types get 415 and other methods on a known path 405 with `Allow`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { register, type Stack, startStack } from "./support";

interface Operation {
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}
type Document = { paths: Record<string, Record<string, Operation>>; components: unknown };

let stack: Stack;
let document: Document;
let ajv: Ajv2020;
const seen: Array<{ label: string; method: string; path: string; status: number; body: unknown }> = [];

beforeAll(async () => {
  stack = await startStack();
  document = (await (await fetch(`${stack.url}/docs/json`)).json()) as Document;
  ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: "api", components: document.components });
}, 60_000);
afterAll(() => stack.close());

/** The documented path of a route path (`/configs/:id` -> `/configs/{id}`). */
const documented = (path: string) => path.replace(/:([^/]+)/g, "{$1}");

/** Calls `path` (a route pattern filled with `ids`) and records the answer for the final check. */
async function call(
  method: string,
  pattern: string,
  options: { token?: string; body?: unknown; raw?: BodyInit; type?: string; query?: string; id?: string } = {},
) {
  const path = pattern.replace(/:[^/]+/g, options.id ?? crypto.randomUUID());
  const headers: Record<string, string> = { accept: "application/json" };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined || options.raw !== undefined)
    headers["content-type"] = options.type ?? "application/json";
  const response = await fetch(`${stack.url}${path}${options.query ?? ""}`, {
    method,
    headers,
    body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : undefined;
  seen.push({ label: `${method} ${path}${options.query ?? ""}`, method, path: pattern, status: response.status, body });
  return { status: response.status, body, headers: response.headers };
}

const apiRoutes = () => stack.routes.filter((route) => route.method !== "WS" && route.path.startsWith("/api/"));

test("the main routes answer with real data", async () => {
  const { token, email } = await register(stack.url);
  const password = "a long and unusual passphrase 7";
  const login = await call("POST", "/api/v1/auth/login", { body: { email, password } });
  expect(login.status).toBe(200);
  const refreshed = await call("POST", "/api/v1/auth/refresh", { body: { refresh_token: login.body.refresh_token } });
  expect(refreshed.status).toBe(200);
  expect((await call("GET", "/api/v1/auth/.well-known/jwks.json")).status).toBe(200);
  expect((await call("GET", "/api/v1/auth/me", { token })).status).toBe(200);
  expect((await call("PUT", "/api/v1/auth/me", { token, body: { display_name: "Ada" } })).status).toBe(200);
  expect((await call("GET", "/api/v1/auth/me/encryption-key", { token })).status).toBe(200);

  const reply = await call("POST", "/api/v1/chat/", { token, body: { text: "hello" } });
  expect(reply.status).toBe(200);
  const conversations = await call("GET", "/api/v1/chat/conversations", { token });
  expect(conversations.body.items).toHaveLength(1);
  const id = reply.body.chat_id;
  const conversation = await call("GET", "/api/v1/chat/conversations/:id", { token, id });
  expect(conversation.body.messages).toHaveLength(2);
  expect((await call("GET", "/api/v1/chat/memories", { token })).status).toBe(200);
  expect((await call("DELETE", "/api/v1/chat/memories", { token })).status).toBe(200);

  expect((await call("GET", "/api/v1/agents/catalog", { token })).status).toBe(200);
  expect((await call("POST", "/api/v1/agents/can-create", { token, body: { type: "filesystem" } })).status).toBe(200);
  const config = await call("POST", "/api/v1/agents/configs", {
    token,
    body: { type: "filesystem", config: { path: "/home/ada/notes" } },
  });
  expect(config.status).toBe(201);
  expect((await call("GET", "/api/v1/agents/configs", { token })).body.configs).toHaveLength(1);
  expect((await call("GET", "/api/v1/agents/configs/:id", { token, id: config.body.id })).status).toBe(200);
  const renamed = await call("PUT", "/api/v1/agents/configs/:id", { token, id: config.body.id, body: { name: "N" } });
  expect(renamed.status).toBe(200);
  const trigger = await call("POST", "/api/v1/agents/trigger", { token, body: { config_id: config.body.id } });
  expect(trigger.body.error.code).toBe("device_offline");
  expect((await call("GET", "/api/v1/agents/runs", { token })).status).toBe(200);
  await call("POST", "/api/v1/agents/journey/start", { token, body: { agent_type: "filesystem" } });
  expect((await call("DELETE", "/api/v1/agents/configs/:id", { token, id: config.body.id })).status).toBe(204);

  expect((await call("GET", "/api/v1/billing/subscription", { token })).status).toBe(200);
  expect((await call("POST", "/api/v1/billing/checkout", { token, body: { tier: "pro" } })).status).toBe(200);
  await call("POST", "/api/v1/billing/portal", { token, body: {} });
  expect((await call("DELETE", "/api/v1/billing/subscription", { token })).status).toBe(404);
  const webhook = await call("POST", "/api/v1/billing/webhook", { raw: "{}", type: "text/plain" });
  expect(webhook.body.error.code).toBe("invalid_signature");
  expect((await call("POST", "/api/v1/auth/logout", { token, body: {} })).status).toBe(204);
}, 60_000);

test("every route answers bad input and missing tokens in declared shapes", async () => {
  const { token } = await register(stack.url);
  for (const route of apiRoutes()) {
    await call(route.method, route.path);
    await call(route.method, route.path, { token, id: "not-a-uuid", query: "?limit=-1&before=x&immediately=maybe" });
    if (route.method !== "GET" && route.method !== "DELETE") {
      await call(route.method, route.path, { token, body: { unexpected: true } });
      await call(route.method, route.path, { token, raw: "{not json" });
    }
  }
}, 60_000);

describe("other content types and methods", () => {
  test("a JSON route refuses any other body with 415 in the error shape", async () => {
    const { token } = await register(stack.url);
    const jsonRoutes = apiRoutes().filter(
      (route) => document.paths[documented(route.path)]?.[route.method.toLowerCase()]?.requestBody,
    );
    const outcomes: Record<string, string> = {};
    // Stripe's webhooks read their raw body whatever its type: the signature decides.
    const webhooks = ["/api/v1/billing/webhook", "/api/v1/plugins/payments/webhook"];
    for (const route of jsonRoutes.filter((each) => !webhooks.includes(each.path))) {
      for (const [type, raw] of [
        ["application/x-www-form-urlencoded", "text=hi&email=a%40b.c"],
        ["text/plain", '{"text":"hi"}'],
      ] as const) {
        const response = await call(route.method, route.path, { token, raw, type });
        outcomes[`${route.method} ${route.path} ${type}`] = `${response.status} ${response.body?.error?.code}`;
      }
      const form = new FormData();
      form.set("text", "hi");
      const multipart = await fetch(`${stack.url}${route.path.replace(/:[^/]+/g, crypto.randomUUID())}`, {
        method: route.method,
        headers: { authorization: `Bearer ${token}` },
        body: form,
      });
      const body = (await multipart.json()) as { error?: { code?: string } };
      outcomes[`${route.method} ${route.path} multipart`] = `${multipart.status} ${body.error?.code}`;
    }
    expect(Object.keys(outcomes).length).toBeGreaterThan(30);
    expect(outcomes).toEqual(
      Object.fromEntries(Object.keys(outcomes).map((key) => [key, "415 unsupported_media_type"])),
    );
  });

  test("another method on a known path is 405 with Allow; an unknown path stays 404", async () => {
    const outcomes: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const [path, operations] of Object.entries(document.paths)) {
      const allowed = Object.keys(operations).map((method) => method.toUpperCase());
      if (allowed.includes("GET")) allowed.push("HEAD");
      const wrong = ["GET", "POST", "PUT", "PATCH", "DELETE"].find((method) => !allowed.includes(method));
      if (!wrong) continue;
      const response = await fetch(`${stack.url}${path.replace(/\{[^}]+\}/g, crypto.randomUUID())}`, { method: wrong });
      const body = (await response.json()) as { error?: { code?: string } };
      outcomes[`${wrong} ${path}`] = `${response.status} ${body.error?.code} ${response.headers.get("allow")}`;
      expected[`${wrong} ${path}`] = `405 method_not_allowed ${allowed.sort().join(", ")}`;
    }
    expect(outcomes).toEqual(expected);
    const unknown = await fetch(`${stack.url}/api/v1/agents/nothing-here`, { method: "PATCH" });
    expect(unknown.status).toBe(404);
  });
});

test("every response seen is declared for its operation and matches its schema", () => {
  expect(seen.length).toBeGreaterThan(150);
  const problems: string[] = [];
  const validators = new Map<string, ReturnType<Ajv2020["compile"]>>();
  for (const answer of seen) {
    const operation = document.paths[documented(answer.path)]?.[answer.method.toLowerCase()];
    if (!operation) {
      problems.push(`${answer.label}: no such operation`);
      continue;
    }
    const declared = operation.responses[String(answer.status)];
    if (!declared) {
      problems.push(`${answer.label}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 120)} not declared`);
      continue;
    }
    const schema = declared.content?.["application/json"]?.schema;
    if (!schema) {
      if (answer.body !== undefined) problems.push(`${answer.label}: ${answer.status} has a body, none declared`);
      continue;
    }
    const key = JSON.stringify(schema);
    let validate = validators.get(key);
    if (!validate) {
      validate = ajv.compile(JSON.parse(key.replaceAll('"#/components/', '"api#/components/')));
      validators.set(key, validate);
    }
    if (!validate(answer.body)) {
      problems.push(`${answer.label}: ${answer.status} ${ajv.errorsText(validate.errors)}`);
    }
  }
  expect(problems).toEqual([]);
});
