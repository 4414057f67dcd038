// The monolith's HS256 access tokens during the bounded window (LEGACY_JWT_SECRET_FILE and
// LEGACY_JWT_UNTIL): the verifier's rules with an injectable clock, the configuration checks, and
// real services (auth's /me, a chat route, the device socket's hello, logout) on both sides of it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url, importPKCS8, SignJWT } from "jose";
import { legacyTokenId, legacyTokenWindowFromEnv, withLegacyTokens } from "../../src/shared/auth/legacy-tokens";
import { createTokenVerifier, TokenError, type TokenVerifier } from "../../src/shared/auth/verifier";
import { ConfigError, loadEnv } from "../../src/shared/env";
import { userIdFor } from "../../src/shared/legacy-ids";
import { Metrics } from "../../src/shared/metrics";
import {
  captureLogger,
  createTestContext,
  TEST_TOKEN_POLICY,
  type TestContext,
  type TestKeys,
  testKeys,
} from "../../src/shared/testing";
import { type ChatInstance, rawSocket, startChat } from "../chat/gateway/helpers";
import { get, post, registerUser, startAuth } from "./helpers";

const SECRET = "the-monolith-secret-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "adiuva-legacy-tokens-"));
const secretFile = join(dir, "legacy_jwt_secret");
writeFileSync(secretFile, `${SECRET}\n`);

const UNTIL = new Date("2031-01-01T00:00:00Z");
const UNTIL_S = UNTIL.getTime() / 1000;
/** A fixed "now" well inside the window, for the verifier-level tests. */
const INSIDE_MS = Date.UTC(2030, 5, 1);
const INSIDE_S = INSIDE_MS / 1000;

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

const secretBytes = (secret: string) => new TextEncoder().encode(secret);

/** A token as the monolith (PyJWT) signs it: HS256, `typ` only, the claims given. */
function signLegacy(
  claims: Record<string, unknown>,
  options: { secret?: string | Uint8Array; header?: Record<string, unknown> } = {},
): Promise<string> {
  const secret =
    typeof options.secret === "string" || !options.secret ? secretBytes(options.secret ?? SECRET) : options.secret;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT", ...options.header } as { alg: string })
    .sign(secret);
}

const legacyClaims = (userId: string, nowS: number, extra: Record<string, unknown> = {}) => ({
  sub: userId,
  tier: "pro",
  exp: nowS + 3600,
  ...extra,
});

/** The verifier every service builds (RS256 from the test PEM), wrapped with the window. */
function verifierAt(nowMs: number, onAccepted?: () => void): TokenVerifier {
  const rs256 = createTokenVerifier({
    source: { kind: "pem", pem: keys.publicPem },
    ...TEST_TOKEN_POLICY,
  });
  return withLegacyTokens(rs256, { secret: secretBytes(SECRET), until: UNTIL, now: () => nowMs, onAccepted });
}

async function rejection(verifier: TokenVerifier, token: string): Promise<string> {
  try {
    await verifier.verify(token);
  } catch (error) {
    if (error instanceof TokenError) return error.reason;
    throw error;
  }
  throw new Error("the token was accepted");
}

describe("legacy tokens: the verifier", () => {
  const userId = crypto.randomUUID();

  test("an HS256 token of the monolith's shape is accepted and mapped to the user, with no session", async () => {
    const token = await signLegacy(legacyClaims(userId, INSIDE_S, { iat: INSIDE_S - 60 }));
    const user = await verifierAt(INSIDE_MS).verify(token);
    expect(user).toEqual({ userId, tier: "pro", tokenId: legacyTokenId(token), expiresAt: INSIDE_S + 3600 });
    expect(user.sessionId).toBeUndefined();
  });

  test("the token id is a stable digest: the same token twice gives the same id, another token another", async () => {
    const token = await signLegacy(legacyClaims(userId, INSIDE_S));
    const other = await signLegacy(legacyClaims(userId, INSIDE_S, { exp: INSIDE_S + 60 }));
    const verifier = verifierAt(INSIDE_MS);
    const [first, second, third] = [
      await verifier.verify(token),
      await verifier.verify(token),
      await verifier.verify(other),
    ];
    expect(first.tokenId).toBe(second.tokenId);
    expect(first.tokenId).toMatch(/^legacy:[\w-]{43}$/);
    expect(third.tokenId).not.toBe(first.tokenId);
  });

  test("`iat` is optional; without it the token still verifies", async () => {
    const user = await verifierAt(INSIDE_MS).verify(await signLegacy(legacyClaims(userId, INSIDE_S)));
    expect(user.userId).toBe(userId);
  });

  test("RS256 tokens of this deployment still verify through the wrapper", async () => {
    const token = await new SignJWT({ tier: "free" })
      .setProtectedHeader({ alg: "RS256", kid: keys.kid, typ: "JWT" })
      .setSubject(userId)
      .setIssuer(TEST_TOKEN_POLICY.issuer)
      .setAudience(TEST_TOKEN_POLICY.audience)
      .setIssuedAt()
      .setExpirationTime("5m")
      .setJti("j1")
      .sign(await importPKCS8(keys.privatePem, "RS256"));
    expect(await verifierAt(Date.now()).verify(token)).toMatchObject({ userId, tier: "free", tokenId: "j1" });
  });

  test("alg confusion: HS256 signed with the RS256 public key (PEM) as secret is refused, window open", async () => {
    const claims = legacyClaims(userId, INSIDE_S, { tier: "team" });
    const withoutKid = await signLegacy(claims, { secret: keys.publicPem });
    expect(await rejection(verifierAt(INSIDE_MS), withoutKid)).toBe("token_signature_invalid");
    const withKid = await signLegacy(claims, { secret: keys.publicPem, header: { kid: keys.kid } });
    expect(await rejection(verifierAt(INSIDE_MS), withKid)).toBe("token_alg_not_allowed");
  });

  test("a header with a `kid` is never verified as HS256, even signed with the legacy secret", async () => {
    const claims = legacyClaims(userId, INSIDE_S);
    for (const kid of [keys.kid, "monolith", ""]) {
      const token = await signLegacy(claims, { header: { kid } });
      expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_alg_not_allowed");
    }
  });

  test("alg none is refused, with or without a kid", async () => {
    const payload = base64url.encode(JSON.stringify(legacyClaims(userId, INSIDE_S)));
    for (const header of [{ alg: "none", typ: "JWT" }, { alg: "none" }, { alg: "none", kid: keys.kid }]) {
      const token = `${base64url.encode(JSON.stringify(header))}.${payload}.`;
      expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_alg_not_allowed");
    }
  });

  test("from LEGACY_JWT_UNTIL on, HS256 is refused exactly as without a window", async () => {
    const token = await signLegacy(legacyClaims(userId, UNTIL_S));
    expect(await rejection(verifierAt(UNTIL.getTime()), token)).toBe("token_alg_not_allowed");
    expect(await rejection(verifierAt(UNTIL.getTime() + 86_400_000), token)).toBe("token_alg_not_allowed");
    // The same token a moment earlier, with the window still open, verifies.
    expect((await verifierAt(UNTIL.getTime() - 1000).verify(token)).userId).toBe(userId);
  });

  test("a token valid past the window's end expires with the window, so no socket outlives it", async () => {
    const token = await signLegacy(legacyClaims(userId, INSIDE_S, { exp: UNTIL_S + 86_400 }));
    expect((await verifierAt(INSIDE_MS).verify(token)).expiresAt).toBe(UNTIL_S);
  });

  test("a wrong secret is refused", async () => {
    const token = await signLegacy(legacyClaims(userId, INSIDE_S), { secret: "another-secret-0123456789abcdef" });
    expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_signature_invalid");
  });

  test("a tier outside the Tier enum is refused", async () => {
    for (const tier of ["enterprise", "admin", "", 3]) {
      const token = await signLegacy(legacyClaims(userId, INSIDE_S, { tier }));
      expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_claims_invalid");
    }
  });

  test("claims beyond the monolith's shape, or a subject that is no user id, are refused", async () => {
    for (const extra of [{ jti: "j1" }, { sid: crypto.randomUUID() }, { iss: "adiuva-auth" }, { aud: "adiuva-api" }]) {
      const token = await signLegacy(legacyClaims(userId, INSIDE_S, extra));
      expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_claims_invalid");
    }
    for (const sub of ["", "   ", { id: 42 }, -1, "x".repeat(129)]) {
      const token = await signLegacy(legacyClaims(sub as string, INSIDE_S));
      expect(await rejection(verifierAt(INSIDE_MS), token)).toBe("token_claims_invalid");
    }
    const { tier: _, ...noTier } = legacyClaims(userId, INSIDE_S);
    expect(await rejection(verifierAt(INSIDE_MS), await signLegacy(noTier))).toBe("token_claims_invalid");
  });

  test('a monolith user id that is not a UUID ("42", or the integer 42) names the user the import made of it', async () => {
    const imported = userIdFor("42");
    expect(imported).not.toBe("42");
    for (const sub of ["42", 42]) {
      const token = await signLegacy(legacyClaims(sub as string, INSIDE_S));
      expect((await verifierAt(INSIDE_MS).verify(token)).userId).toBe(imported);
    }
    // A UUID is kept as it is, as the import keeps it.
    const token = await signLegacy(legacyClaims(userId, INSIDE_S));
    expect((await verifierAt(INSIDE_MS).verify(token)).userId).toBe(userId);
  });

  test("expired, issued in the future, or with no `exp`: refused", async () => {
    const expired = await signLegacy(legacyClaims(userId, INSIDE_S, { exp: INSIDE_S - 60 }));
    expect(await rejection(verifierAt(INSIDE_MS), expired)).toBe("token_expired");
    const future = await signLegacy(legacyClaims(userId, INSIDE_S, { iat: INSIDE_S + 600 }));
    expect(await rejection(verifierAt(INSIDE_MS), future)).toBe("token_not_yet_valid");
    const { exp: _, ...noExp } = legacyClaims(userId, INSIDE_S);
    expect(await rejection(verifierAt(INSIDE_MS), await signLegacy(noExp))).toBe("token_claims_invalid");
  });

  test("header parameters the monolith never wrote (jku, x5u, cty) are refused", async () => {
    const claims = legacyClaims(userId, INSIDE_S);
    for (const header of [{ jku: "https://evil.example/jwks" }, { x5u: "https://evil.example/cert" }, { cty: "JWT" }]) {
      expect(await rejection(verifierAt(INSIDE_MS), await signLegacy(claims, { header }))).toBe("token_malformed");
    }
  });

  test("each acceptance increments auth_legacy_tokens_total and is logged at debug", async () => {
    const metrics = new Metrics();
    const capture = captureLogger();
    const window = legacyTokenWindowFromEnv(
      { LEGACY_JWT_SECRET_FILE: secretFile, LEGACY_JWT_UNTIL: UNTIL },
      { metrics, logger: capture.logger, now: () => INSIDE_MS },
    );
    const rs256 = createTokenVerifier({ source: { kind: "pem", pem: keys.publicPem }, ...TEST_TOKEN_POLICY });
    const verifier = withLegacyTokens(rs256, window);
    const token = await signLegacy(legacyClaims(userId, INSIDE_S));
    await verifier.verify(token);
    await verifier.verify(token);
    await rejection(verifier, await signLegacy(legacyClaims(userId, INSIDE_S), { secret: "wrong-secret-wrong" }));
    expect(await legacyCount(metrics)).toBe(2);
    const lines = capture.lines.filter((line) => line.msg === "legacy access token accepted");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 20, user_id: userId, module: "legacy-tokens" });
    expect(JSON.stringify(lines)).not.toContain(token);
  });
});

describe("legacy tokens: configuration", () => {
  const base = { SERVICE_NAME: "auth", NODE_ENV: "test" };

  test("one variable without the other stops the start with a ConfigError naming both", () => {
    for (const half of [{ LEGACY_JWT_SECRET_FILE: secretFile }, { LEGACY_JWT_UNTIL: "2031-01-01" }]) {
      expect(() => loadEnv({ ...base, ...half })).toThrow(ConfigError);
      expect(() => loadEnv({ ...base, ...half })).toThrow(/LEGACY_JWT_SECRET_FILE and LEGACY_JWT_UNTIL/);
    }
  });

  test("LEGACY_JWT_UNTIL is an ISO date (midnight UTC) or a date-time with its offset", () => {
    const until = (value: string) => loadEnv({ ...base, LEGACY_JWT_SECRET_FILE: secretFile, LEGACY_JWT_UNTIL: value });
    expect(until("2031-01-01").LEGACY_JWT_UNTIL).toEqual(new Date("2031-01-01T00:00:00Z"));
    expect(until("2031-01-01T12:00:00+02:00").LEGACY_JWT_UNTIL).toEqual(new Date("2031-01-01T10:00:00Z"));
    for (const bad of ["2031-01-01T12:00:00", "2031-02-30", "next year"]) {
      expect(() => until(bad)).toThrow(/LEGACY_JWT_UNTIL/);
    }
  });

  test("unset: no window at all", () => {
    const env = loadEnv(base);
    expect(legacyTokenWindowFromEnv(env, { metrics: new Metrics(), logger: captureLogger().logger })).toBeUndefined();
  });

  test("a secret file that is missing, empty or holds a PEM key is refused at start", () => {
    const deps = { metrics: new Metrics(), logger: captureLogger().logger };
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    const pem = join(dir, "pem");
    writeFileSync(pem, keys.publicPem);
    for (const file of [join(dir, "missing"), empty, pem]) {
      expect(() => legacyTokenWindowFromEnv({ LEGACY_JWT_SECRET_FILE: file, LEGACY_JWT_UNTIL: UNTIL }, deps)).toThrow(
        ConfigError,
      );
    }
  });
});

async function legacyCount(metrics: Metrics): Promise<number> {
  const metric = metrics.registry.getSingleMetric("auth_legacy_tokens_total");
  const values = (await metric?.get())?.values ?? [];
  return values.reduce((sum, each) => sum + each.value, 0);
}

describe("legacy tokens: services", () => {
  let ctx: TestContext;
  let auth: Awaited<ReturnType<typeof startAuth>>;
  let closedAuth: Awaited<ReturnType<typeof startAuth>>;
  let chat: ChatInstance;
  const open = { LEGACY_JWT_SECRET_FILE: secretFile, LEGACY_JWT_UNTIL: "2999-01-01" };

  beforeAll(async () => {
    ctx = await createTestContext();
    auth = await startAuth(ctx, { env: open });
    closedAuth = await startAuth(ctx, { env: { LEGACY_JWT_SECRET_FILE: secretFile, LEGACY_JWT_UNTIL: "2020-01-01" } });
    chat = await startChat(ctx, { env: open });
  });
  afterAll(() => ctx.close());

  const nowS = () => Math.floor(Date.now() / 1000);
  const legacyTokenFor = (userId: string, tier = "pro") =>
    signLegacy({ sub: userId, tier, iat: nowS(), exp: nowS() + 600 });

  test("auth's /me answers a monolith token of an imported user, and counts it", async () => {
    const { user } = await registerUser(auth.url);
    const before = await legacyCount(auth.platform.metrics);
    const response = await get(auth.url, "/me", await legacyTokenFor(user.id));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: user.id, email: user.email });
    expect(await legacyCount(auth.platform.metrics)).toBe(before + 1);
  });

  test("another service's route (chat) accepts it too, with the token's tier", async () => {
    const response = await fetch(`${chat.url}/api/v1/chat/conversations`, {
      headers: { authorization: `Bearer ${await legacyTokenFor(crypto.randomUUID())}` },
    });
    expect(response.status).toBe(200);
    expect(await legacyCount(chat.platform.metrics)).toBeGreaterThanOrEqual(1);
  });

  test("the device socket's hello accepts it", async () => {
    const socket = await rawSocket(chat.wsUrl);
    socket.send({
      type: "hello",
      token: await legacyTokenFor(crypto.randomUUID()),
      device_id: "d1",
      tools: ["task_list"],
      protocol: 1,
    });
    expect(await socket.next("welcome")).toMatchObject({ type: "welcome", protocol: 1 });
    socket.ws.close();
  });

  test("alg confusion, a wrong secret or a kid header: 401, window open", async () => {
    const { user } = await registerUser(auth.url);
    const claims = { sub: user.id, tier: "team", exp: nowS() + 600 };
    for (const token of [
      await signLegacy(claims, { secret: keys.publicPem }),
      await signLegacy(claims, { secret: keys.publicPem, header: { kid: keys.kid } }),
      await signLegacy(claims, { secret: "not-the-monolith-secret" }),
      await signLegacy(claims, { header: { kid: keys.kid } }),
    ]) {
      expect((await get(auth.url, "/me", token)).status).toBe(401);
    }
  });

  test("after LEGACY_JWT_UNTIL (a past date): 401, while RS256 tokens still work", async () => {
    const session = await registerUser(closedAuth.url);
    expect((await get(closedAuth.url, "/me", await legacyTokenFor(session.user.id))).status).toBe(401);
    expect((await get(closedAuth.url, "/me", session.access_token)).status).toBe(200);
    expect(await legacyCount(closedAuth.platform.metrics)).toBe(0);
  });

  test("logout cannot end a legacy token (no session): it lives to its exp or the window's end", async () => {
    const session = await registerUser(auth.url);
    const legacy = await legacyTokenFor(session.user.id);
    expect((await post(auth.url, "/logout", {}, { authorization: `Bearer ${legacy}` })).status).toBe(204);
    expect((await get(auth.url, "/me", legacy)).status).toBe(200);
    const all = await post(auth.url, "/logout", { all: true }, { authorization: `Bearer ${legacy}` });
    expect(all.status).toBe(204);
    // Every session of the user ended: the RS256 token is refused, the monolith's is not.
    expect((await get(auth.url, "/me", session.access_token)).status).toBe(401);
    expect((await get(auth.url, "/me", legacy)).status).toBe(200);
  });
});
