// CORS for the app's renderer, on real servers built by createApp: one with CORS_ORIGINS listing
// the renderer's origin, one with the default (no cross-origin access). The service under test is
// a small one behind the real auth guard, so a preflight is shown to need no token.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { z } from "zod";
import type { ServiceModule } from "../../src/shared/app";
import { authGuard } from "../../src/shared/auth/guard";
import { ConfigError, loadEnv } from "../../src/shared/env";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, type TestContext } from "../../src/shared/testing";

const APP = "app://adiuva";
const OTHER = "https://evil.example";

const notesService = async (platform: Platform): Promise<ServiceModule> => ({
  name: "notes",
  prefix: "/api/v1/notes",
  plugin: new Elysia({ prefix: "/api/v1/notes" })
    .use(authGuard(platform.verifier, platform.logger))
    .post("/", ({ body, user }) => ({ saved: body.text, user: user.userId }), {
      body: z.object({ text: z.string().min(1) }),
    }),
});

let ctx: TestContext;
let listed: string;
let closed: string;
let token: string;
beforeAll(async () => {
  ctx = await createTestContext();
  listed = (
    await ctx.start([notesService], { env: { CORS_ORIGINS: `${APP}, http://localhost:5173`, MAX_BODY_BYTES: "64" } })
  ).url;
  closed = (await ctx.start([notesService])).url;
  token = await ctx.token("ada", "pro");
});
afterAll(() => ctx.close());

const preflight = (base: string, origin: string) =>
  fetch(`${base}/api/v1/notes`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });

const post = (base: string, origin: string, body: unknown = { text: "hi" }) =>
  fetch(`${base}/api/v1/notes`, {
    method: "POST",
    headers: { origin, authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** Every CORS header of a response. */
function corsHeaders(response: Response): Record<string, string> {
  const found: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name.startsWith("access-control-")) found[name] = value;
  });
  return found;
}

describe("a listed origin", () => {
  test("its preflight is answered 204 with the methods and headers it may use, without credentials", async () => {
    const response = await preflight(listed, APP);
    expect(response.status).toBe(204);
    expect(corsHeaders(response)).toEqual({
      "access-control-allow-origin": APP,
      "access-control-allow-methods": "GET, POST, PUT, DELETE",
      "access-control-allow-headers": "Authorization, Content-Type, Accept, X-Request-Id",
      "access-control-max-age": "600",
    });
    expect(response.headers.get("vary")).toContain("Origin");
  });

  test("its requests carry the headers, errors included, and expose the request id", async () => {
    const ok = await post(listed, "http://localhost:5173");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ saved: "hi", user: "ada" });
    const expected = {
      "access-control-allow-origin": "http://localhost:5173",
      "access-control-expose-headers": "X-Request-Id, Retry-After, RateLimit, RateLimit-Policy",
    };
    expect(corsHeaders(ok)).toEqual(expected);
    expect(ok.headers.get("vary")).toBe("Origin");
    // A 422, a 401 and a 413 answered before the body is read: the page can read them all.
    const invalid = await post(listed, "http://localhost:5173", { text: "" });
    expect({ status: invalid.status, cors: corsHeaders(invalid) }).toEqual({ status: 422, cors: expected });
    const anonymous = await fetch(`${listed}/api/v1/notes`, {
      method: "POST",
      headers: { origin: "http://localhost:5173", "content-type": "application/json" },
      body: "{}",
    });
    expect({ status: anonymous.status, cors: corsHeaders(anonymous) }).toEqual({ status: 401, cors: expected });
    const tooLarge = await post(listed, "http://localhost:5173", { text: "x".repeat(100) });
    expect({ status: tooLarge.status, cors: corsHeaders(tooLarge) }).toEqual({ status: 413, cors: expected });
  });
});

describe("no cross-origin access otherwise", () => {
  test("an origin not listed gets no CORS header on its preflight or its requests", async () => {
    // Not answered as a preflight: routing refuses it (no route declares OPTIONS).
    const refused = await preflight(listed, OTHER);
    expect({ refused: refused.status >= 400, cors: corsHeaders(refused) }).toEqual({ refused: true, cors: {} });
    const request = await post(listed, OTHER);
    expect(request.status).toBe(200);
    expect(corsHeaders(request)).toEqual({});
  });

  test("by default no origin is allowed", async () => {
    for (const origin of [APP, OTHER]) {
      const refused = await preflight(closed, origin);
      expect({ refused: refused.status >= 400, cors: corsHeaders(refused) }).toEqual({ refused: true, cors: {} });
      const request = await post(closed, origin);
      expect({ status: request.status, cors: corsHeaders(request) }).toEqual({ status: 200, cors: {} });
    }
    expect(loadEnv({ SERVICE_NAME: "all" }).CORS_ORIGINS).toEqual([]);
  });

  test("CORS_ORIGINS takes origins only", () => {
    expect(
      loadEnv({ SERVICE_NAME: "all", CORS_ORIGINS: " App://Adiuva ,https://a.example:8443," }).CORS_ORIGINS,
    ).toEqual(["app://adiuva", "https://a.example:8443"]);
    for (const bad of ["*", "https://a.example/path", "a.example"]) {
      expect(() => loadEnv({ SERVICE_NAME: "all", CORS_ORIGINS: bad })).toThrow(ConfigError);
      expect(() => loadEnv({ SERVICE_NAME: "all", CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS/);
    }
  });
});
