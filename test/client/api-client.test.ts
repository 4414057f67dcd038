// The SDK's REST client: `createApiClient` (openapi-fetch typed by src/client/api-types.ts) against
// the whole stack in one process, and the committed types checked against the OpenAPI document that
// stack serves. The `@ts-expect-error` lines are checked by `bun run typecheck`: a misspelt path or
// a body of the wrong shape must not compile.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { API_TYPES_FILE, renderApiTypes } from "../../scripts/api-types";
import { type components, createApiClient } from "../../src/client";
import { type Stack, startStack } from "../contract/support";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
}, 60_000);
afterAll(() => stack.close());

describe("createApiClient", () => {
  test("src/client/api-types.ts is what /docs/json describes (regenerate with `bun run docs:api-types`)", async () => {
    const response = await fetch(`${stack.url}/docs/json`);
    expect(response.status).toBe(200);
    const expected = await renderApiTypes(await response.json());
    expect(await Bun.file(API_TYPES_FILE).text()).toBe(expected);
    expect(expected).toContain('"/api/v1/agents/trigger": {');
  });

  test("register, login, me and the conversations through typed calls; the token is asked per request", async () => {
    const email = `sdk-${crypto.randomUUID()}@example.com`;
    const password = "a long and unusual passphrase 7";
    const anonymous = createApiClient({ baseUrl: stack.url });
    const registered = await anonymous.POST("/api/v1/auth/register", { body: { email, password } });
    expect(registered.response.status).toBe(201);
    const login = await anonymous.POST("/api/v1/auth/login", { body: { email, password } });
    const token: string | undefined = login.data?.access_token;
    expect(token).toBeString();

    let asked = 0;
    const api = createApiClient({
      baseUrl: stack.url,
      token: async () => {
        asked++;
        return token;
      },
    });
    const me = await api.GET("/api/v1/auth/me");
    const user: components["schemas"]["User"] | undefined = me.data;
    expect(user).toMatchObject({ email, tier: "free", id: login.data?.user.id });
    const conversations = await api.GET("/api/v1/chat/conversations", { params: { query: { limit: 5 } } });
    const titles: string[] | undefined = conversations.data?.items.map((item) => item.title);
    expect({ status: conversations.response.status, titles }).toEqual({ status: 200, titles: [] });
    expect(asked).toBe(2);

    // Without a token: the error body is typed too.
    const refused = await anonymous.GET("/api/v1/auth/me");
    const code: string | undefined = refused.error?.error.code;
    expect({ status: refused.response.status, code: typeof code }).toEqual({ status: 401, code: "string" });
    // A fixed token string is sent as it is.
    const fixed = createApiClient({ baseUrl: stack.url, token: token ?? "" });
    expect((await fixed.GET("/api/v1/auth/me")).data?.email).toBe(email);
  });

  test("a misspelt path or a wrong body does not compile", async () => {
    const api = createApiClient({ baseUrl: stack.url, token: "not-a-jwt" });
    // @ts-expect-error no such path
    const misspelt = await api.GET("/api/v1/chat/conversationz");
    expect(misspelt.response.status).toBe(404);
    // @ts-expect-error login takes {email, password}
    const wrong = await api.POST("/api/v1/auth/login", { body: { mail: "a@example.com" } });
    expect(wrong.response.status).toBe(422);
  });
});
