// The shared verifier and guard on a real server: every way a token can be bad is refused with the
// same 401 body, while the log names the precise reason. Tokens are forged here with jose.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { base64url, importPKCS8, SignJWT } from "jose";
import { authGuard, requireTier } from "../../src/shared/auth/guard";
import { publicKeysFromPem } from "../../src/shared/auth/key-ring";
import { generateRsaPemPair } from "../../src/shared/auth/keygen";
import { createTokenVerifier, TOKEN_REJECTED_MESSAGE } from "../../src/shared/auth/verifier";
import {
  captureLogger,
  createTestContext,
  TEST_TOKEN_POLICY,
  type TestContext,
  testKeys,
} from "../../src/shared/testing";

const capture = captureLogger();
let ctx: TestContext;
let base: string;
let keys: Awaited<ReturnType<typeof testKeys>>;

beforeAll(async () => {
  ctx = await createTestContext();
  keys = await testKeys();
  const server = await ctx.start([
    async (platform) => ({
      name: "guarded",
      prefix: "/api/v1/guarded",
      plugin: new Elysia({ prefix: "/api/v1/guarded" })
        .get("/public", () => ({ open: true }))
        .use(authGuard(platform.verifier, capture.logger))
        .get("/me", ({ user }) => user)
        .get("/pro", ({ user }) => {
          requireTier(user, "pro");
          return { ok: true };
        }),
    }),
    // A second service without the guard: the first one's guard must not reach it.
    async () => ({
      name: "open",
      prefix: "/api/v1/open",
      plugin: new Elysia({ prefix: "/api/v1/open" }).get("/", () => ({ open: true })),
    }),
  ]);
  base = server.url;
});
afterAll(() => ctx.close());

const call = (path: string, token?: string) =>
  fetch(`${base}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

const now = () => Math.floor(Date.now() / 1000);

async function sign(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
  privatePem?: string,
): Promise<string> {
  const key = await importPKCS8(privatePem ?? keys.privatePem, "RS256");
  return new SignJWT({ tier: "free", ...claims })
    .setProtectedHeader({ alg: "RS256", kid: keys.kid, typ: "JWT", ...header } as { alg: string })
    .sign(key);
}

const validClaims = () => ({
  sub: "user-1",
  iss: "adiuva-auth",
  aud: "adiuva-api",
  iat: now(),
  exp: now() + 600,
  jti: "j1",
});

/** Expects the generic 401 and returns the reason the guard logged for it. */
async function rejected(token: string | undefined): Promise<unknown> {
  const before = capture.lines.length;
  const response = await call("/api/v1/guarded/me", token);
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBe('Bearer realm="adiuva"');
  const body = (await response.json()) as { error: Record<string, unknown> };
  expect({ code: body.error.code, message: body.error.message }).toEqual({
    code: "unauthorized",
    message: TOKEN_REJECTED_MESSAGE,
  });
  const line = capture.lines.slice(before).find((each) => each.msg === "token rejected");
  return line?.reason;
}

describe("token verification", () => {
  test("a valid RS256 token yields the user", async () => {
    const token = await ctx.token("user-1", "pro");
    const response = await call("/api/v1/guarded/me", token);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ userId: "user-1", tier: "pro" });
  });

  test("missing token", async () => {
    expect(await rejected(undefined)).toBe("token_missing");
  });

  test("another scheme counts as missing", async () => {
    const response = await fetch(`${base}/api/v1/guarded/me`, { headers: { authorization: "Basic dXNlcjpwdw==" } });
    expect(response.status).toBe(401);
  });

  test("alg none", async () => {
    const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT", kid: keys.kid }));
    const payload = base64url.encode(JSON.stringify({ ...validClaims(), tier: "team" }));
    expect(await rejected(`${header}.${payload}.`)).toBe("token_alg_not_allowed");
  });

  test("HS256 signed with the public key as secret", async () => {
    const token = await new SignJWT({ ...validClaims(), tier: "team" })
      .setProtectedHeader({ alg: "HS256", kid: keys.kid, typ: "JWT" })
      .sign(new TextEncoder().encode(keys.publicPem));
    expect(await rejected(token)).toBe("token_alg_not_allowed");
  });

  test("expired", async () => {
    expect(await rejected(await sign({ ...validClaims(), iat: now() - 1000, exp: now() - 100 }))).toBe("token_expired");
  });

  test("another deployment's audience, or none", async () => {
    expect(await rejected(await sign({ ...validClaims(), aud: "adiuva-staging" }))).toBe("token_audience_invalid");
    const { aud: _, ...withoutAudience } = validClaims();
    expect(await rejected(await sign(withoutAudience))).toBe("token_audience_invalid");
  });

  test("a lifetime longer than this deployment issues: it could outlive any revocation", async () => {
    const year = 365 * 24 * 3600;
    expect(await rejected(await sign({ ...validClaims(), exp: now() + year }))).toBe("token_lifetime_invalid");
    // Exactly the configured lifetime is what auth issues, and is accepted.
    const ok = await call("/api/v1/guarded/me", await sign({ ...validClaims(), exp: now() + 900 }));
    expect(ok.status).toBe(200);
  });

  test("wrong issuer", async () => {
    expect(await rejected(await sign({ ...validClaims(), iss: "someone-else" }))).toBe("token_issuer_invalid");
  });

  test("tampered payload", async () => {
    const [header, , signature] = (await sign(validClaims())).split(".");
    const payload = base64url.encode(JSON.stringify({ ...validClaims(), tier: "team" }));
    expect(await rejected(`${header}.${payload}.${signature}`)).toBe("token_signature_invalid");
  });

  test("unknown kid", async () => {
    const other = await generateRsaPemPair();
    const [otherKey] = await publicKeysFromPem(other.publicPem);
    expect(await rejected(await sign(validClaims(), { kid: otherKey?.kid }, other.privatePem))).toBe(
      "token_unknown_key",
    );
  });

  test("a known kid over another key's signature", async () => {
    const other = await generateRsaPemPair();
    expect(await rejected(await sign(validClaims(), {}, other.privatePem))).toBe("token_signature_invalid");
  });

  test("no kid at all", async () => {
    expect(await rejected(await sign(validClaims(), { kid: undefined }))).toBe("token_unknown_key");
  });

  test("issued in the future", async () => {
    expect(await rejected(await sign({ ...validClaims(), iat: now() + 3600 }))).toBe("token_not_yet_valid");
  });

  test("a tier that does not exist", async () => {
    expect(await rejected(await sign({ ...validClaims(), tier: "platinum" }))).toBe("token_claims_invalid");
  });

  test("garbage and oversized tokens", async () => {
    expect(await rejected("not.a.jwt")).toBe("token_malformed");
    expect(await rejected("x".repeat(9000))).toBe("token_malformed");
  });
});

describe("guard scope and tiers", () => {
  test("routes before the guard stay public, routes of other plugins are untouched", async () => {
    expect((await call("/api/v1/guarded/public")).status).toBe(200);
    expect((await call("/api/v1/open")).status).toBe(200);
    expect((await call("/api/v1/guarded/pro")).status).toBe(401);
  });

  test("requireTier: 403 below the tier, 200 at or above it", async () => {
    const low = await call("/api/v1/guarded/pro", await ctx.token("u", "free"));
    expect(low.status).toBe(403);
    expect(((await low.json()) as { error: { code: string } }).error.code).toBe("tier_insufficient");
    expect((await call("/api/v1/guarded/pro", await ctx.token("u", "pro"))).status).toBe(200);
    expect((await call("/api/v1/guarded/pro", await ctx.token("u", "team"))).status).toBe(200);
  });
});

describe("key sources", () => {
  test("a PEM bundle accepts each of its keys and nothing else", async () => {
    const next = await generateRsaPemPair();
    const [nextKey] = await publicKeysFromPem(next.publicPem);
    const verifier = createTokenVerifier({
      source: { kind: "pem", pem: `${keys.publicPem}\n${next.publicPem}` },
      ...TEST_TOKEN_POLICY,
    });
    expect((await verifier.verify(await sign(validClaims()))).userId).toBe("user-1");
    expect((await verifier.verify(await sign(validClaims(), { kid: nextKey?.kid }, next.privatePem))).userId).toBe(
      "user-1",
    );
    const stranger = await generateRsaPemPair();
    const [strangerKey] = await publicKeysFromPem(stranger.publicPem);
    await expect(
      verifier.verify(await sign(validClaims(), { kid: strangerKey?.kid }, stranger.privatePem)),
    ).rejects.toMatchObject({ reason: "token_unknown_key" });
  });

  test("a private key PEM verifies with its public half", async () => {
    const verifier = createTokenVerifier({ source: { kind: "pem", pem: keys.privatePem }, ...TEST_TOKEN_POLICY });
    expect((await verifier.verify(await sign(validClaims()))).userId).toBe("user-1");
  });

  test("a JWKS URL: cached, refetched on an unknown kid, 503 when unreachable", async () => {
    const next = await generateRsaPemPair();
    const [current] = await publicKeysFromPem(keys.publicPem);
    const [nextKey] = await publicKeysFromPem(next.publicPem);
    let published = [current!.jwk];
    let fetches = 0;
    let up = true;
    const jwksServer = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => {
        fetches += 1;
        return up ? Response.json({ keys: published }) : new Response("down", { status: 500 });
      },
    });
    ctx.defer(() => jwksServer.stop(true));
    const verifier = createTokenVerifier({
      source: { kind: "jwks-url", url: `http://127.0.0.1:${jwksServer.port}/jwks.json`, cooldownMs: 0 },
      ...TEST_TOKEN_POLICY,
    });
    await verifier.verify(await sign(validClaims()));
    await verifier.verify(await sign(validClaims()));
    expect(fetches).toBe(1);
    published = [current!.jwk, nextKey!.jwk];
    await verifier.verify(await sign(validClaims(), { kid: nextKey?.kid }, next.privatePem));
    expect(fetches).toBe(2);

    up = false;
    const stranger = await generateRsaPemPair();
    const [strangerKey] = await publicKeysFromPem(stranger.publicPem);
    const error = await verifier
      .verify(await sign(validClaims(), { kid: strangerKey?.kid }, stranger.privatePem))
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ reason: "token_keys_unavailable", status: 503 });
  });
});
