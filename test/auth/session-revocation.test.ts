// Ending a session ends its access tokens everywhere: the auth routes, another service's routes
// and the device socket of the chat service, each a separate server on the same Redis.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { connectDevice, startChat } from "../chat/gateway/helpers";
import { get, PASSWORD, post, randomIp, registerUser, type SessionBody, startAuth } from "./helpers";

let ctx: TestContext;
let auth: string;
let chat: Awaited<ReturnType<typeof startChat>>;
beforeAll(async () => {
  ctx = await createTestContext();
  // No grace window: a second use of a rotated refresh token is reuse at once.
  auth = (await startAuth(ctx, { env: { AUTH_REFRESH_GRACE_S: "0" } })).url;
  chat = await startChat(ctx);
});
afterAll(() => ctx.close());

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const conversations = async (token: string) =>
  (await fetch(`${chat.url}/api/v1/chat/conversations`, { headers: bearer(token) })).status;
/** Chat learns of a revocation through Redis: the status once it refuses the token (or time runs out). */
const refusedByChat = (token: string) =>
  eventually(
    () => conversations(token),
    (status) => status === 401,
  );
const me = async (token: string) => (await get(auth, "/me", token)).status;
const login = async (email: string) =>
  (await (
    await post(auth, "/login", { email, password: PASSWORD }, { "x-forwarded-for": randomIp() })
  ).json()) as SessionBody;

describe("logout", () => {
  test("the session's access token stops working in every service; the user's other sessions go on", async () => {
    const session = await registerUser(auth);
    const other = await login(session.user.email);
    expect([await me(session.access_token), await conversations(session.access_token)]).toEqual([200, 200]);

    expect((await post(auth, "/logout", {}, bearer(session.access_token))).status).toBe(204);
    expect(await me(session.access_token)).toBe(401);
    expect(await refusedByChat(session.access_token)).toBe(401);
    expect([await me(other.access_token), await conversations(other.access_token)]).toEqual([200, 200]);
    // Logging out again with the ended token is refused like any invalid token.
    expect((await post(auth, "/logout", {}, bearer(session.access_token))).status).toBe(401);
  });

  test("all: true ends the access tokens of every session", async () => {
    const session = await registerUser(auth);
    const other = await login(session.user.email);
    expect((await post(auth, "/logout", { all: true }, bearer(session.access_token))).status).toBe(204);
    expect(await refusedByChat(other.access_token)).toBe(401);
    expect(await me(other.access_token)).toBe(401);
  });

  test("a device connected with the session is disconnected with 4401; another user's device stays", async () => {
    const session = await registerUser(auth);
    const bystander = await registerUser(auth);
    const device = await connectDevice(ctx, {
      url: chat.wsUrl,
      userId: session.user.id,
      token: () => session.access_token,
    });
    const unaffected = await connectDevice(ctx, {
      url: chat.wsUrl,
      userId: bystander.user.id,
      token: () => bystander.access_token,
    });
    const closed = new Promise<{ code: number; reason: string; willReconnect: boolean }>((resolve) =>
      device.on("close", resolve),
    );
    expect((await post(auth, "/logout", {}, bearer(session.access_token))).status).toBe(204);
    expect(await closed).toEqual({ code: 4403, reason: "session ended", willReconnect: false });
    expect(device.status).toBe("closed");
    await Bun.sleep(100);
    expect(unaffected.status).toBe("open");
    device.close();
  });
});

describe("other ways a session ends", () => {
  test("a password change ends the other sessions' access tokens, not the caller's", async () => {
    const session = await registerUser(auth);
    const other = await login(session.user.email);
    const response = await fetch(`${auth}/api/v1/auth/me`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...bearer(session.access_token) },
      body: JSON.stringify({ current_password: PASSWORD, new_password: "another long passphrase" }),
    });
    expect(response.status).toBe(200);
    expect(await refusedByChat(other.access_token)).toBe(401);
    expect([await me(session.access_token), await conversations(session.access_token)]).toEqual([200, 200]);
  });

  test("a refresh token replayed after rotation ends the family's access tokens", async () => {
    const session = await registerUser(auth);
    const first = await post(auth, "/refresh", { refresh_token: session.refresh_token });
    const rotated = (await first.json()) as SessionBody;
    await Bun.sleep(5);
    expect((await post(auth, "/refresh", { refresh_token: session.refresh_token })).status).toBe(401);
    expect(await refusedByChat(rotated.access_token)).toBe(401);
    expect(await me(rotated.access_token)).toBe(401);
  });

  test("PostgreSQL keeps the revocation: a service started after Redis lost it still refuses the session", async () => {
    const session = await registerUser(auth);
    expect((await post(auth, "/logout", { all: true }, bearer(session.access_token))).status).toBe(204);
    // What a Redis restarted empty looks like to the revocations: no stored set, nothing announced.
    const platform = await ctx.platform();
    await platform.redis?.del(platform.keys.revokedSessions);
    expect(await platform.redis?.exists(platform.keys.revokedSessions)).toBe(0);

    const fresh = await startChat(ctx);
    const status = await fetch(`${fresh.url}/api/v1/chat/conversations`, { headers: bearer(session.access_token) });
    expect(status.status).toBe(401);
  });
});
