// Each service's OpenAPI document, and the `all` process's, as a client author meets them: two
// independent validators must accept them, every operation is described in full (summary, tags,
// security, JSON request body, every response), and the docs page runs from the service alone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import { validate as readmeValidate } from "@readme/openapi-parser";
import { BILLING_PAGES_PREFIX } from "../../src/billing/pages";
import { SERVICE_NAMES } from "../../src/shared/env";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { startService } from "./support";

interface Operation {
  summary?: string;
  tags?: string[];
  security?: unknown[];
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** Operations anyone may call; every other one declares the bearer scheme. */
const PUBLIC = new Set([
  "get /api/v1/auth/.well-known/jwks.json",
  "post /api/v1/auth/register",
  "post /api/v1/auth/login",
  "post /api/v1/auth/refresh",
  "post /api/v1/auth/password/forgot",
  "post /api/v1/auth/password/reset",
  "post /api/v1/auth/email/verify",
  "post /api/v1/billing/webhook",
  "post /api/v1/plugins/payments/webhook",
  "get /api/v1/ws/device/tools.json",
]);

/** Stripe's webhooks: public, and their body is read raw. */
const STRIPE_WEBHOOKS = new Set(["post /api/v1/billing/webhook", "post /api/v1/plugins/payments/webhook"]);

let ctx: TestContext;
const documents: Record<string, { url: string; docs: string; document: Document }> = {};
beforeAll(async () => {
  ctx = await createTestContext();
  for (const name of [...SERVICE_NAMES, "all"] as const) {
    const service = await startService(ctx, name);
    const document = (await (await fetch(`${service.url}${service.docs}/json`)).json()) as Document;
    documents[name] = { ...service, document };
  }
}, 60_000);
afterAll(() => ctx.close());

const operations = (document: Document) =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ key: `${method} ${path}`, operation })),
  );

describe.each([...SERVICE_NAMES, "all"])("the %s document", (name) => {
  test("passes @apidevtools/swagger-parser and @readme/openapi-parser validation", async () => {
    const { document } = documents[name] as { document: Document };
    expect(document.openapi).toStartWith("3.1.");
    // Both validators dereference in place: each gets its own copy.
    await SwaggerParser.validate(structuredClone(document) as never);
    const result = await readmeValidate(structuredClone(document) as never);
    expect(result).toMatchObject({ valid: true });
  });

  test("every operation has a summary, tags, its security, JSON bodies only and declared responses", () => {
    const { document } = documents[name] as { document: Document };
    const problems: string[] = [];
    for (const { key, operation } of operations(document)) {
      if (!operation.summary) problems.push(`${key}: no summary`);
      if (!operation.tags?.length) problems.push(`${key}: no tags`);
      const bearer = JSON.stringify(operation.security) === JSON.stringify([{ bearer: [] }]);
      if (bearer === PUBLIC.has(key)) problems.push(`${key}: security ${JSON.stringify(operation.security)}`);
      const types = Object.keys(operation.requestBody?.content ?? {});
      if (types.some((type) => type !== "application/json")) problems.push(`${key}: body as ${types}`);
      const statuses = Object.keys(operation.responses);
      if (!statuses.some((status) => status.startsWith("2"))) problems.push(`${key}: no success response`);
      if (bearer && !statuses.includes("401")) problems.push(`${key}: no 401`);
      // The Stripe webhooks read their raw body (the signature covers the exact bytes).
      const parsed = types.length > 0 && !STRIPE_WEBHOOKS.has(key);
      if (parsed && !["415", "422"].every((status) => statuses.includes(status))) {
        problems.push(`${key}: a JSON body without 415 and 422`);
      }
      for (const [status, response] of Object.entries(operation.responses)) {
        if (status !== "204" && !response.content) problems.push(`${key}: ${status} without a body schema`);
        if (
          status >= "400" &&
          JSON.stringify(response.content?.["application/json"]?.schema) !== '{"$ref":"#/components/schemas/Error"}'
        ) {
          problems.push(`${key}: ${status} not in the error shape`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(operations(document).length).toBeGreaterThan(0);
  });

  test("leaves the WebSocket out (the protocol doc describes it) and documents no operational route", () => {
    const { document } = documents[name] as { document: Document };
    const keys = operations(document).map(({ key }) => key);
    expect(keys.filter((key) => key.startsWith("ws ") || key.endsWith(" /api/v1/ws/device"))).toEqual([]);
    expect(keys.filter((key) => / \/(health|ready|docs)/.test(key))).toEqual([]);
    // The billing pages are HTML for people, left out on purpose (docs/pages.md).
    expect(keys.filter((key) => key.includes(` ${BILLING_PAGES_PREFIX}`))).toEqual([]);
  });

  test("its docs page loads its script from the service itself", async () => {
    const { url, docs } = documents[name] as { url: string; docs: string };
    const page = await fetch(`${url}${docs}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((match) => match[1]);
    expect(scripts).toEqual([`${docs}/scalar.js`]);
    expect(html).toContain(`data-url="${docs}/json"`);
    const script = await fetch(`${url}${docs}/scalar.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toStartWith("text/javascript");
    const bundled = Bun.file("node_modules/@scalar/api-reference/dist/browser/standalone.js");
    expect((await script.arrayBuffer()).byteLength).toBe(bundled.size);
  });
});

test("the all document holds every service's operations, with shared component names", () => {
  const all = documents.all?.document as Document & { components: { schemas: Record<string, unknown> } };
  const each = SERVICE_NAMES.flatMap((name) => operations(documents[name]?.document as Document).map(({ key }) => key));
  expect(
    operations(all)
      .map(({ key }) => key)
      .sort(),
  ).toEqual([...new Set(each)].sort());
  expect(Object.keys(all.components.schemas)).toEqual(
    expect.arrayContaining(["Error", "Session", "User", "ConversationPage", "AgentConfig", "RunPage", "Subscription"]),
  );
});
