// The auth service's routes on a real server, PostgreSQL and Redis: happy, error and security
// cases for each. X-Forwarded-For (one trusted hop) gives each test its own client IP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeProtectedHeader } from "jose";
import postgres from "postgres";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import {
  errorCode,
  get,
  PASSWORD,
  post,
  randomIp,
  registerUser,
  type SessionBody,
  startAuth,
  uniqueEmail,
} from "./helpers";

let ctx: TestContext;
let base: string;
beforeAll(async () => {
  ctx = await createTestContext();
  base = (await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } })).url;
});
afterAll(() => ctx.close());

const put = (path: string, body: unknown, token?: string) =>
  fetch(`${base}/api/v1/auth${path}`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
const asClient = () => ({ "x-forwarded-for": randomIp() });

describe("POST /register", () => {
  test("creates the user and returns a session with an RS256 access token", async () => {
    const email = uniqueEmail();
    const response = await post(base, "/register", { email, password: PASSWORD, display_name: "Ada" }, asClient());
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = (await response.json()) as SessionBody;
    expect(body).toMatchObject({
      user: { email, display_name: "Ada", tier: "free" },
      token_type: "Bearer",
      expires_in: 900,
    });
    expect(decodeProtectedHeader(body.access_token)).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(body.refresh_token).toStartWith("art_");
  });

  test("e-mails are unique case-insensitively", async () => {
    const email = uniqueEmail();
    await registerUser(base, email);
    const again = await post(base, "/register", { email: email.toUpperCase(), password: PASSWORD }, asClient());
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe("email_taken");
  });

  test("invalid e-mail, weak password and unexpected fields are 422", async () => {
    const cases = [
      { email: "not-an-email", password: PASSWORD },
      { email: uniqueEmail(), password: "short" },
      { email: uniqueEmail(), password: "password123" },
      { email: uniqueEmail(), password: "aaaaaaaaaaaa" },
      { email: uniqueEmail(), password: PASSWORD, tier: "team" },
    ];
    for (const body of cases) {
      const response = await post(base, "/register", body, asClient());
      expect({ body, status: response.status }).toEqual({ body, status: 422 });
    }
  });
});

describe("POST /login", () => {
  test("signs in with the right password, whatever the e-mail's case", async () => {
    const { user } = await registerUser(base);
    const response = await post(base, "/login", { email: user.email.toUpperCase(), password: PASSWORD }, asClient());
    expect(response.status).toBe(200);
    expect(((await response.json()) as SessionBody).user.id).toBe(user.id);
  });

  test("unknown e-mail and wrong password give the identical error", async () => {
    const { user } = await registerUser(base);
    const wrong = await post(base, "/login", { email: user.email, password: "wrong password!" }, asClient());
    const unknown = await post(base, "/login", { email: uniqueEmail(), password: PASSWORD }, asClient());
    const shape = async (response: Response) => {
      const body = (await response.json()) as { error: { code: string; message: string } };
      return { status: response.status, code: body.error.code, message: body.error.message };
    };
    const expected = { status: 401, code: "invalid_credentials", message: "invalid e-mail or password" };
    expect(await shape(wrong)).toEqual(expected);
    expect(await shape(unknown)).toEqual(expected);
  });

  test("missing fields are 422", async () => {
    expect((await post(base, "/login", { email: uniqueEmail() }, asClient())).status).toBe(422);
  });
});

describe("GET /me", () => {
  test("returns the caller's profile", async () => {
    const session = await registerUser(base);
    const response = await get(base, "/me", session.access_token);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(session.user);
  });

  test("no token or a forged one is 401", async () => {
    expect((await get(base, "/me")).status).toBe(401);
    expect((await get(base, "/me", "forged.token.value")).status).toBe(401);
  });

  test("a valid token for a user that does not exist is 404", async () => {
    const response = await get(base, "/me", await ctx.token(crypto.randomUUID(), "free"));
    expect(response.status).toBe(404);
  });
});

describe("PUT /me", () => {
  test("updates the display name", async () => {
    const session = await registerUser(base);
    const response = await put("/me", { display_name: "Grace" }, session.access_token);
    expect(response.status).toBe(200);
    expect(((await response.json()) as SessionBody["user"]).display_name).toBe("Grace");
  });

  test("a password change needs the current password and ends the other sessions", async () => {
    const session = await registerUser(base);
    const other = (await (
      await post(base, "/login", { email: session.user.email, password: PASSWORD }, asClient())
    ).json()) as SessionBody;
    const refused = await put(
      "/me",
      { current_password: "not it at all", new_password: "another good one" },
      session.access_token,
    );
    expect(refused.status).toBe(403);
    const changed = await put(
      "/me",
      { current_password: PASSWORD, new_password: "another good one" },
      session.access_token,
    );
    expect(changed.status).toBe(200);
    expect((await post(base, "/refresh", { refresh_token: other.refresh_token })).status).toBe(401);
    expect((await post(base, "/refresh", { refresh_token: session.refresh_token })).status).toBe(200);
    const relogin = await post(base, "/login", { email: session.user.email, password: "another good one" }, asClient());
    expect(relogin.status).toBe(200);
  });

  test("unexpected fields, a tier or a lone new password are 422; no token is 401", async () => {
    const session = await registerUser(base);
    expect((await put("/me", { tier: "team" }, session.access_token)).status).toBe(422);
    expect((await put("/me", { new_password: "another good one" }, session.access_token)).status).toBe(422);
    expect((await put("/me", { display_name: "x" })).status).toBe(401);
  });
});

describe("GET /me/encryption-key", () => {
  test("returns the caller's own 256-bit key, the same every time, stored only wrapped", async () => {
    const session = await registerUser(base);
    const first = await get(base, "/me/encryption-key", session.access_token);
    expect(first.status).toBe(200);
    expect(first.headers.get("cache-control")).toBe("no-store");
    const body = (await first.json()) as { key: string; algorithm: string };
    expect(Buffer.from(body.key, "base64").length).toBe(32);
    expect(body.algorithm).toBe("AES-256-GCM");
    const second = (await (await get(base, "/me/encryption-key", session.access_token)).json()) as { key: string };
    expect(second.key).toBe(body.key);
    const sql = postgres(ctx.databaseUrl, { max: 1 });
    const [row] = await sql`select encryption_key from auth.users where id = ${session.user.id}`;
    await sql.end();
    expect(row?.encryption_key).toStartWith("v1:");
    expect(row?.encryption_key).not.toContain(body.key);
  });

  test("each user gets their own key; no token is 401", async () => {
    const [a, b] = [await registerUser(base), await registerUser(base)];
    const keyOf = async (token: string) =>
      ((await (await get(base, "/me/encryption-key", token)).json()) as { key: string }).key;
    expect(await keyOf(a.access_token)).not.toBe(await keyOf(b.access_token));
    expect((await get(base, "/me/encryption-key")).status).toBe(401);
  });
});

describe("POST /logout", () => {
  test("revokes this session's refresh tokens only", async () => {
    const session = await registerUser(base);
    const other = (await (
      await post(base, "/login", { email: session.user.email, password: PASSWORD }, asClient())
    ).json()) as SessionBody;
    const response = await post(base, "/logout", {}, { authorization: `Bearer ${session.access_token}` });
    expect(response.status).toBe(204);
    expect((await post(base, "/refresh", { refresh_token: session.refresh_token })).status).toBe(401);
    expect((await post(base, "/refresh", { refresh_token: other.refresh_token })).status).toBe(200);
  });

  test("all: true ends every session of the user", async () => {
    const session = await registerUser(base);
    const other = (await (
      await post(base, "/login", { email: session.user.email, password: PASSWORD }, asClient())
    ).json()) as SessionBody;
    expect(
      (await post(base, "/logout", { all: true }, { authorization: `Bearer ${session.access_token}` })).status,
    ).toBe(204);
    expect((await post(base, "/refresh", { refresh_token: other.refresh_token })).status).toBe(401);
  });

  test("no token is 401; unexpected fields are 422", async () => {
    expect((await post(base, "/logout", {})).status).toBe(401);
    const session = await registerUser(base);
    expect(
      (await post(base, "/logout", { everyone: true }, { authorization: `Bearer ${session.access_token}` })).status,
    ).toBe(422);
  });
});

describe("GET /.well-known/jwks.json", () => {
  test("publishes the signing key under the kid the tokens carry, public parts only", async () => {
    const response = await get(base, "/.well-known/jwks.json");
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: Array<Record<string, string>> };
    const session = await registerUser(base);
    expect(keys.map((key) => key.kid)).toContain(decodeProtectedHeader(session.access_token).kid!);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
    }
  });
});
