// Every route of every service, read from the assembled application: anything not on the short
// public list must refuse a request without a valid access token. A route added later is covered
// without touching this file (it is protected unless someone adds it to PUBLIC_ROUTES).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { importPKCS8, SignJWT } from "jose";
import { serviceFactories } from "../../src/services";
import { generateRsaPemPair } from "../../src/shared/auth/keygen";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, type TestContext } from "../../src/shared/testing";

/** Routes that are public by design, each with the reason. */
const PUBLIC_ROUTES: Record<string, string> = {
  "GET /health": "liveness probe",
  "GET /ready": "readiness probe",
  "GET /docs": "OpenAPI UI",
  "GET /docs/json": "OpenAPI document",
  "GET /docs/scalar.js": "the OpenAPI UI's script",
  "GET /api/v1/auth/.well-known/jwks.json": "public keys for verifiers",
  "POST /api/v1/auth/register": "creates the credentials",
  "POST /api/v1/auth/login": "exchanges credentials for tokens",
  "POST /api/v1/auth/refresh": "authenticated by the refresh token in its body",
  "POST /api/v1/auth/password/forgot": "the reset link goes to the address's mailbox; same answer for any address",
  "POST /api/v1/auth/password/reset": "authenticated by the mailed reset token in its body",
  "POST /api/v1/auth/email/verify": "authenticated by the mailed confirmation token in its body",
  "POST /api/v1/billing/webhook": "authenticated by Stripe's signature",
  "POST /api/v1/plugins/payments/webhook": "authenticated by Stripe's signature",
  "WS /api/v1/ws/device": "authenticated by the hello frame or header (close 4401; see the gateway tests)",
  "GET /api/v1/ws/device/tools.json": "the device tool contract: protocol, not data",
  // The pages a browser lands on after Stripe (docs/pages.md): no token exists there. The success
  // page and its poll show a plan name only, for a session Stripe confirms; all are rate limited per IP.
  "GET /billing": "the customer portal's return page",
  "GET /billing/success": "checkout's success page",
  "GET /billing/success/status": "the success page's poll, answering for the session in its URL",
  "GET /billing/cancel": "checkout's cancel page",
  "GET /billing/assets/pages.css": "the pages' stylesheet",
  "GET /billing/assets/pages.js": "the pages' script",
  "GET /billing/*": "the pages' 404 page",
  // The pages the mailed links open (docs/pages.md): the token in the link or the form is the only
  // credential there is. A GET never spends it; the forms call the API's verbs; all rate limited per IP.
  "GET /account": "the account pages' landing page",
  "GET /account/reset": "the password-reset link's form",
  "POST /account/reset": "the reset form, authenticated by the mailed token in it",
  "GET /account/reset/done": "the reset's outcome page",
  "GET /account/verify": "the confirmation link's page (a GET spends nothing)",
  "POST /account/verify": "the confirmation button, authenticated by the mailed token in it",
  "GET /account/verify/done": "the confirmation's outcome page",
  "GET /account/assets/pages.css": "the account pages' stylesheet",
  "GET /account/assets/pages.js": "the account pages' script",
  "GET /account/*": "the account pages' 404 page",
  // Embedded mode's stand-in for S3 (src/storage/local-store.ts): the token in the path is an
  // HMAC-signed, short-lived grant for one object key (and part), as a presigned S3 URL is.
  "PUT /storage/local/:token": "authenticated by the HMAC-signed grant in its path",
  "GET /storage/local/:token": "authenticated by the HMAC-signed grant in its path",
};

let ctx: TestContext;
let base: string;
let routes: Array<{ method: string; path: string }>;
let platform: Platform;
beforeAll(async () => {
  ctx = await createTestContext();
  const server = await ctx.start(Object.values(serviceFactories));
  base = server.url;
  platform = server.platform;
  routes = (server.app.routes as Array<{ method: string; path: string }>).map(({ method, path }) => ({ method, path }));
});
afterAll(() => ctx.close());

const key = (route: { method: string; path: string }) => `${route.method} ${route.path.replace(/\/$/, "")}`;
const concrete = (path: string) => path.replace(/:[^/]+/g, crypto.randomUUID());

let forged: Promise<string> | undefined;
/** One token signed by a key nobody trusts, made once: an RSA key pair per route took seconds. */
function forgedToken(): Promise<string> {
  forged ??= signWithUnknownKey();
  return forged;
}

async function signWithUnknownKey(): Promise<string> {
  const pair = await generateRsaPemPair();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tier: "team" })
    .setProtectedHeader({ alg: "RS256", kid: "forged" })
    .setSubject(crypto.randomUUID())
    .setIssuer("adiuva-auth")
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .setJti(crypto.randomUUID())
    .sign(await importPKCS8(pair.privatePem, "RS256"));
}

test("the public list names only routes that exist", () => {
  const served = new Set(routes.map(key));
  expect(Object.keys(PUBLIC_ROUTES).filter((route) => !served.has(route))).toEqual([]);
});

describe("every other route refuses requests without a valid token", () => {
  const credentials: Array<[string, () => Promise<Record<string, string>>]> = [
    ["no token", async () => ({})],
    ["a malformed token", async () => ({ authorization: "Bearer not.a.jwt" })],
    ["another scheme", async () => ({ authorization: `Basic ${btoa("a:b")}` })],
    ["a token signed by an unknown key", async () => ({ authorization: `Bearer ${await forgedToken()}` })],
    [
      "an expired token",
      async () => ({ authorization: `Bearer ${await ctx.token(crypto.randomUUID(), "team", { expiresInS: -120 })}` }),
    ],
    [
      "a valid token of an ended session",
      async () => {
        const sessionId = crypto.randomUUID();
        await platform.revocations.revoke([sessionId], Date.now() + 60_000);
        return { authorization: `Bearer ${await ctx.token(crypto.randomUUID(), "team", { sessionId })}` };
      },
    ],
  ];
  for (const [name, headers] of credentials) {
    test(`${name}: 401 in the error shape, before the body is validated`, async () => {
      const protectedRoutes = routes.filter((route) => !(key(route) in PUBLIC_ROUTES));
      expect(protectedRoutes.length).toBeGreaterThan(20);
      const outcomes: Record<string, unknown> = {};
      for (const route of protectedRoutes) {
        const response = await fetch(`${base}${concrete(route.path)}`, {
          method: route.method,
          headers: { "content-type": "application/json", ...(await headers()) },
          // An empty object fails every body schema: the token must be judged first.
          body: route.method === "GET" || route.method === "DELETE" ? undefined : "{}",
        });
        const body = (await response.json().catch(() => null)) as { error?: { code?: string } } | null;
        outcomes[key(route)] = `${response.status} ${body?.error?.code}`;
      }
      const expected = Object.fromEntries(Object.keys(outcomes).map((route) => [route, "401 unauthorized"]));
      expect(outcomes).toEqual(expected);
    });
  }
});
