// Every route of the plugins service, read from the running application: refused without a valid
// token before the body is looked at, refused at the tier's requests per minute (the `plugins`
// budget, shared by all its routes, per user), and answering junk input with a 4xx in the error
// shape. Ownership (another user's plugin, install or review is 404) and the admin role (403) are
// checked route by route in publishing, installs, reviews and review tests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TIER_LIMITS } from "../../src/shared/tiers";
import { newUserId, type Plugins, startPlugins } from "./harness";

/** Stripe's webhook: public (its signature is the credential) and not limited per user. */
const WEBHOOK = "POST /api/v1/plugins/payments/webhook";

let p: Plugins;
let routes: Array<{ method: string; path: string }>;
/** Every route but Stripe's webhook: each takes a token. */
let signedIn: Array<{ method: string; path: string }>;
beforeAll(async () => {
  // A webhook secret, so Stripe's route verifies junk (400) instead of answering 503 unconfigured.
  p = await startPlugins({ env: { PLUGINS_STRIPE_WEBHOOK_SECRET: "whsec_plugins_security" } });
  routes = (p.server.app.routes as Array<{ method: string; path: string }>)
    .filter((route) => route.path.startsWith("/api/v1/plugins/") && !route.path.includes("/docs"))
    .map(({ method, path }) => ({ method, path }));
  signedIn = routes.filter((route) => `${route.method} ${route.path}` !== WEBHOOK);
});
afterAll(() => p.ctx.close());

const concrete = (path: string) => path.replace(":version", "1.0.0").replace(/:[a-z_]+/g, () => crypto.randomUUID());
const relative = (path: string) => path.replace("/api/v1/plugins", "");
const hasBody = (method: string) => method === "POST" || method === "PUT";

const noGrants = { device_tools: [], origins: [], data: [] };
/** A body each route's schema accepts (routes taking none are absent), so only the budget can refuse it. */
const VALID_BODIES: Record<string, unknown> = {
  "POST /developers/me": { display_name: "Ada", public_key: Buffer.alloc(32, 1).toString("base64") },
  "PUT /developers/me": { display_name: "Ada" },
  "POST /developers/me/plugins": { manifest: {}, signature: "x" },
  "POST /developers/me/plugins/:id/versions": { manifest: {}, signature: "x" },
  "PUT /developers/me/plugins/:id/listing": { homepage_url: null, support_url: null },
  "POST /catalog/:id/reviews": { rating: 3 },
  "PUT /catalog/:id/reviews/me": { rating: 3 },
  "POST /catalog/:id/reviews/:review_id/report": { reason: "spam" },
  "POST /installs": { plugin_id: crypto.randomUUID(), grants: noGrants },
  "POST /installs/:plugin_id/upgrade": { grants: noGrants },
  "POST /checkout": {
    plugin_id: crypto.randomUUID(),
    grants: noGrants,
    success_url: "https://example.com/ok",
    cancel_url: "https://example.com/no",
  },
  "POST /developers/me/payment-account": {},
  "POST /developers/me/payment-account/onboarding-link": {
    refresh_url: "https://example.com/again",
    return_url: "https://example.com/done",
  },
  "POST /admin/plugins/:id/versions/:version/reject": { reason: "x" },
  "POST /admin/plugins/:id/suspend": { reason: "x" },
};

test("the service serves the routes docs/plugins.md lists", () => {
  expect(routes.map((route) => `${route.method} ${relative(route.path)}`).sort()).toEqual(
    [
      "GET /manifest-schema",
      "POST /developers/me",
      "GET /developers/me",
      "PUT /developers/me",
      "GET /developers/me/plugins",
      "POST /developers/me/plugins",
      "GET /developers/me/plugins/:id",
      "PUT /developers/me/plugins/:id/listing",
      "POST /developers/me/plugins/:id/versions",
      "POST /developers/me/plugins/:id/versions/:version/submit",
      "POST /developers/me/payment-account",
      "GET /developers/me/payment-account",
      "POST /developers/me/payment-account/onboarding-link",
      "GET /developers/me/sales",
      "POST /checkout",
      "POST /payments/webhook",
      "GET /catalog",
      "GET /catalog/:id",
      "GET /catalog/:id/reviews",
      "POST /catalog/:id/reviews",
      "PUT /catalog/:id/reviews/me",
      "DELETE /catalog/:id/reviews/me",
      "POST /catalog/:id/reviews/:review_id/report",
      "GET /installs",
      "POST /installs",
      "DELETE /installs/:plugin_id",
      "POST /installs/:plugin_id/upgrade",
      "GET /admin/review-queue",
      "POST /admin/plugins/:id/versions/:version/approve",
      "POST /admin/plugins/:id/versions/:version/reject",
      "POST /admin/plugins/:id/suspend",
      "POST /admin/plugins/:id/unsuspend",
      "GET /admin/reported-reviews",
      "DELETE /admin/reviews/:review_id",
    ].sort(),
  );
});

describe("tokens", () => {
  const cases: Array<[string, () => Promise<Record<string, string>>]> = [
    ["no token", async () => ({})],
    ["a malformed token", async () => ({ authorization: "Bearer not.a.jwt" })],
    [
      "an expired token",
      async () => ({ authorization: `Bearer ${await p.ctx.token(newUserId(), "team", { expiresInS: -120 })}` }),
    ],
  ];
  for (const [name, headers] of cases) {
    test(`${name}: every route answers 401 unauthorized, before the body is read`, async () => {
      const outcomes: Record<string, string> = {};
      for (const route of signedIn) {
        const response = await fetch(`${p.server.url}${concrete(route.path)}`, {
          method: route.method,
          headers: { "content-type": "application/json", ...(await headers()) },
          // An empty object fails every body schema: the token must be judged first.
          body: hasBody(route.method) ? "{}" : undefined,
        });
        const body = (await response.json()) as { error?: { code?: string } };
        outcomes[`${route.method} ${route.path}`] = `${response.status} ${body.error?.code}`;
      }
      expect(outcomes).toEqual(Object.fromEntries(Object.keys(outcomes).map((key) => [key, "401 unauthorized"])));
    });
  }
});

describe("rate limits", () => {
  test("a free user's 20 requests a minute are shared by every route; then 429 everywhere; others unaffected", async () => {
    const limit = TIER_LIMITS.free.requestsPerMinute;
    const token = await p.token(newUserId(), "free");
    for (let i = 0; i < limit; i++) {
      const answer = await p.call("GET", "/installs", { token });
      expect(answer.status).toBe(200);
      expect(answer.headers.get("ratelimit-policy")).toBe(`"plugins";q=${limit};w=60`);
    }
    for (const route of signedIn) {
      const answer = await p.call(route.method, relative(concrete(route.path)), {
        token,
        body: VALID_BODIES[`${route.method} ${relative(route.path)}`],
      });
      expect({
        route: `${route.method} ${route.path}`,
        status: answer.status,
        code: answer.body?.error?.code,
        retry: Number(answer.headers.get("retry-after")) > 0,
      }).toEqual({ route: `${route.method} ${route.path}`, status: 429, code: "rate_limited", retry: true });
    }
    expect((await p.call("GET", "/installs", { token: await p.token(newUserId(), "free") })).status).toBe(200);
  });

  test("higher tiers get more: a pro user's 21st request is served", async () => {
    const token = await p.token(newUserId(), "pro");
    const statuses = [];
    for (let i = 0; i <= TIER_LIMITS.free.requestsPerMinute; i++) {
      statuses.push((await p.call("GET", "/catalog", { token })).status);
    }
    expect(statuses.every((status) => status === 200)).toBe(true);
  });
});

test("Stripe's webhook takes no token: without a valid signature it is 400 invalid_signature, with or without one", async () => {
  const withToken: Record<string, string> = { authorization: `Bearer ${await p.token(newUserId(), "team")}` };
  for (const headers of [{}, withToken]) {
    const answer = await p.call("POST", "/payments/webhook", { body: "{}", headers });
    expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({
      status: 400,
      code: "invalid_signature",
    });
  }
});

describe("malformed input", () => {
  test("junk ids, bodies and queries get a 4xx in the error shape on every route, never a 5xx", async () => {
    const junkIds = ["not-a-uuid", "x".repeat(600), "..%2F..%2Fetc"];
    const bodies = ["{not json", "[]", "null", '"text"', JSON.stringify({ manifest: [], signature: 1, grants: "all" })];
    const problems: string[] = [];
    const check = async (label: string, response: Response) => {
      const text = await response.text();
      let code: unknown;
      try {
        code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
      } catch {}
      if (response.status >= 500 || (response.status >= 400 && typeof code !== "string")) {
        problems.push(`${label} -> ${response.status} ${text.slice(0, 120)}`);
      }
    };
    for (const route of routes) {
      const paths = route.path.includes(":") ? junkIds.map((id) => route.path.replace(/:[a-z_]+/g, id)) : [route.path];
      // A fresh team user for each route: this test is about input, not budgets.
      const token = await p.token(newUserId(), "team");
      for (const path of paths) {
        if (!hasBody(route.method)) {
          const url = `${p.server.url}${path}?limit=-1&cursor=%ff&sort=%7B%7D&q=%00`;
          await check(
            `${route.method} ${path}`,
            await fetch(url, { method: route.method, headers: { authorization: `Bearer ${token}` } }),
          );
          continue;
        }
        for (const body of bodies) {
          const response = await fetch(`${p.server.url}${path}`, {
            method: route.method,
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body,
          });
          await check(`${route.method} ${path} ${body.slice(0, 20)}`, response);
        }
      }
    }
    expect(problems).toEqual([]);
  }, 60_000);
});
