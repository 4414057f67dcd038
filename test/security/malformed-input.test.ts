// Bad input never produces a 5xx: every route of every service, with a valid token (team tier, so
// tier gates do not hide deeper code), receives malformed JSON, wrong JSON types, prototype keys,
// control characters, invalid UTF-8, deep nesting, wrong content types and junk path and query
// parameters. Stripe is the fake API behind the real SDK, so billing runs its real code paths.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ACCOUNT_PAGES_PREFIX } from "../../src/auth/pages";
import { BILLING_PAGES_PREFIX } from "../../src/billing/pages";
import { serviceFactories } from "../../src/services";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { FakeStripe } from "../../src/shared/testing/fake-stripe";
import { billingEnv } from "../billing/harness";

let ctx: TestContext;
let base: string;
let routes: Array<{ method: string; path: string }>;
beforeAll(async () => {
  ctx = await createTestContext();
  const stripe = new FakeStripe();
  stripe.start();
  ctx.defer(() => stripe.stop());
  // Plugin payments' webhook secret too, so its route verifies (400) rather than answering 503 unconfigured.
  const server = await ctx.start(Object.values(serviceFactories), {
    env: { ...billingEnv(stripe), PLUGINS_STRIPE_WEBHOOK_SECRET: "whsec_plugins_malformed" },
  });
  base = server.url;
  routes = (server.app.routes as Array<{ method: string; path: string }>)
    .filter((route) => route.method !== "WS" && !route.path.startsWith("/docs"))
    .map(({ method, path }) => ({ method, path }));
});
afterAll(() => ctx.close());

const deep = `${'{"a":'.repeat(500)}1${"}".repeat(500)}`;
const wrongTypes = JSON.stringify({
  text: 123,
  type: [],
  agent_type: {},
  tier: { $gt: "" },
  email: 1,
  password: null,
  refresh_token: ["x"],
  config_id: "../../etc/passwd",
  journey_id: "not-a-uuid",
  name: "\u0000\u202e\u0007",
  surface: "sideways",
  success_url: "javascript:alert(1)",
  config: "not an object",
});
const bodies: Array<[string, BodyInit, string]> = [
  ["malformed JSON", "{not json", "application/json"],
  ["a JSON array", "[]", "application/json"],
  ["JSON null", "null", "application/json"],
  ["a JSON string", '"hello"', "application/json"],
  ["deep nesting", deep, "application/json"],
  ["wrong types everywhere", wrongTypes, "application/json"],
  ["prototype keys", '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}', "application/json"],
  ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x00, 0x7d]), "application/json"],
  ["JSON as text/plain", '{"text":"hi"}', "text/plain"],
  ["a form body", "text=hi&tier=team", "application/x-www-form-urlencoded"],
];
const junkIds = ["not-a-uuid", "..%2F..%2Fetc", "%00", "x".repeat(600), "00000000-0000-0000-0000-000000000000"];
const junkQuery = "?limit=-1&cursor=%00%ff&before=not-a-date&offset=1e309&page=%7B%7D";

test("no route answers bad input with a 5xx, and every refusal is in the error shape", async () => {
  const token = await ctx.token(crypto.randomUUID(), "team");
  const violations: string[] = [];
  const check = async (label: string, response: Response) => {
    const text = await response.text();
    // The billing and account pages answer people, not clients: their refusals are pages
    // (test/billing/pages.test.ts, test/auth/pages.test.ts).
    const page =
      [BILLING_PAGES_PREFIX, ACCOUNT_PAGES_PREFIX].some((prefix) => label.includes(` ${prefix}`)) &&
      response.headers.get("content-type")?.startsWith("text/html");
    if (response.status >= 500) violations.push(`${label} -> ${response.status} ${text.slice(0, 160)}`);
    else if (response.status >= 400 && !page) {
      const code = (() => {
        try {
          return (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
        } catch {
          return undefined;
        }
      })();
      if (typeof code !== "string") violations.push(`${label} -> ${response.status} without the error shape`);
    }
  };
  for (const route of routes) {
    const paths = route.path.includes(":") ? junkIds.map((id) => route.path.replace(/:[^/]+/g, id)) : [route.path];
    for (const path of paths) {
      if (route.method === "GET" || route.method === "DELETE") {
        const url = `${base}${path}${junkQuery}`;
        await check(
          `${route.method} ${path}${junkQuery}`,
          await fetch(url, { method: route.method, headers: { authorization: `Bearer ${token}` } }),
        );
        continue;
      }
      for (const [name, body, type] of bodies) {
        const response = await fetch(`${base}${path}`, {
          method: route.method,
          headers: { authorization: `Bearer ${token}`, "content-type": type, "stripe-signature": "t=1,v1=00" },
          body,
        });
        await check(`${route.method} ${path} with ${name}`, response);
      }
    }
  }
  expect(violations).toEqual([]);
});
