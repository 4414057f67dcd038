// The caller's signed-in devices: listing them, and ending one as logout ends a session.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { connectDevice, startChat } from "../chat/gateway/helpers";
import { errorCode, get, PASSWORD, post, randomIp, type SessionBody, startAuth, uniqueEmail } from "./helpers";

interface SessionRow {
  id: string;
  device_name: string | null;
  created_at: string;
  last_used_at: string;
  current: boolean;
}

let ctx: TestContext;
let auth: string;
beforeAll(async () => {
  ctx = await createTestContext();
  auth = (await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } })).url;
});
afterAll(() => ctx.close());

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const from = () => ({ "x-forwarded-for": randomIp() });
const list = async (token: string) => {
  const response = await get(auth, "/sessions", token);
  expect(response.status).toBe(200);
  return ((await response.json()) as { sessions: SessionRow[] }).sessions;
};
/** The session an access token belongs to: its `sid` claim. */
const sessionIdOfToken = (token: string) =>
  (JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as { sid: string }).sid;
const end = (token: string | undefined, id: string) =>
  fetch(`${auth}/api/v1/auth/sessions/${id}`, { method: "DELETE", headers: token ? bearer(token) : {} });

async function signUp(body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const email = uniqueEmail();
  const response = await post(auth, "/register", { email, password: PASSWORD, ...body }, { ...from(), ...headers });
  expect(response.status).toBe(201);
  return (await response.json()) as SessionBody;
}
async function signIn(email: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const response = await post(auth, "/login", { email, password: PASSWORD, ...body }, { ...from(), ...headers });
  expect(response.status).toBe(200);
  return (await response.json()) as SessionBody;
}

describe("GET /sessions", () => {
  test("lists the live sessions with their device names, marking the caller's", async () => {
    const first = await signUp({ device_name: "  Work laptop  " });
    const second = await signIn(first.user.email, {}, { "user-agent": "Adiuva/2.3 (Macintosh; Intel Mac OS X 14_5)" });
    const ended = await signIn(first.user.email, { device_name: "Old phone" });
    expect((await post(auth, "/logout", {}, bearer(ended.access_token))).status).toBe(204);

    const sessions = await list(second.access_token);
    expect(sessions.map((s) => [s.device_name, s.current]).sort()).toEqual([
      ["Adiuva/2.3 (Macintosh; Intel Mac OS X 14_5)", true],
      ["Work laptop", false],
    ]);
    for (const session of sessions) {
      expect(Date.parse(session.created_at)).toBeGreaterThan(Date.now() - 60_000);
      expect(Date.parse(session.last_used_at)).toBeGreaterThanOrEqual(Date.parse(session.created_at));
    }
    // Another user sees only their own.
    const stranger = await signUp();
    expect((await list(stranger.access_token)).map((s) => s.current)).toEqual([true]);
  });

  test("a User-Agent is bounded to 100 characters and cleaned of control characters", async () => {
    const session = await signUp({}, { "user-agent": `Agent\t${"x".repeat(300)}` });
    const [row] = await list(session.access_token);
    expect(row?.device_name).toBe(`Agent ${"x".repeat(94)}`);
  });

  test("device_name over 100 characters, empty or not a string is 422", async () => {
    for (const device_name of ["x".repeat(101), "   ", 42]) {
      const response = await post(auth, "/login", { email: uniqueEmail(), password: PASSWORD, device_name }, from());
      expect(response.status).toBe(422);
    }
  });

  test("a refresh moves last_used_at, in the rotation", async () => {
    const session = await signUp();
    const [before] = await list(session.access_token);
    await Bun.sleep(20);
    const refreshed = await post(auth, "/refresh", { refresh_token: session.refresh_token }, from());
    expect(refreshed.status).toBe(200);
    const [after] = await list(((await refreshed.json()) as SessionBody).access_token);
    expect(after?.id).toBe(before?.id as string);
    expect(Date.parse(after?.last_used_at ?? "")).toBeGreaterThan(Date.parse(before?.last_used_at ?? ""));
  });

  test("without a token 401", async () => {
    expect((await get(auth, "/sessions")).status).toBe(401);
  });
});

describe("DELETE /sessions/:id", () => {
  test("ends that session: its access and refresh tokens stop, its device socket closes with 4403", async () => {
    const chat = await startChat(ctx);
    const mine = await signUp();
    const laptop = await signIn(mine.user.email, { device_name: "Laptop" });
    const device = await connectDevice(ctx, {
      url: chat.wsUrl,
      userId: mine.user.id,
      token: () => laptop.access_token,
    });
    const closed = new Promise<{ code: number }>((resolve) => device.on("close", resolve));
    const target = (await list(mine.access_token)).find((s) => s.device_name === "Laptop");

    expect((await end(mine.access_token, target?.id as string)).status).toBe(204);
    expect((await closed).code).toBe(4403);
    expect((await get(auth, "/me", laptop.access_token)).status).toBe(401);
    expect((await post(auth, "/refresh", { refresh_token: laptop.refresh_token }, from())).status).toBe(401);
    // The caller's own session goes on.
    expect((await get(auth, "/me", mine.access_token)).status).toBe(200);
    expect((await list(mine.access_token)).map((s) => s.current)).toEqual([true]);
    // Ending it again: already ended, 204 (idempotent).
    expect((await end(mine.access_token, target?.id as string)).status).toBe(204);
  });

  test("another user's session, or none, is 404 and ends nothing; a malformed id is 422", async () => {
    const mine = await signUp();
    const theirs = await signUp();
    const [their] = await list(theirs.access_token);
    const response = await end(mine.access_token, their?.id as string);
    expect([response.status, await errorCode(response)]).toEqual([404, "not_found"]);
    expect((await get(auth, "/me", theirs.access_token)).status).toBe(200);
    expect((await end(mine.access_token, crypto.randomUUID())).status).toBe(404);
    expect((await end(mine.access_token, "not-a-uuid")).status).toBe(422);
    expect((await end(undefined, their?.id as string)).status).toBe(401);
  });

  test("ending the caller's own session signs the caller out", async () => {
    const mine = await signUp();
    const [own] = await list(mine.access_token);
    expect((await end(mine.access_token, own?.id as string)).status).toBe(204);
    expect((await get(auth, "/me", mine.access_token)).status).toBe(401);
  });

  test("a refresh racing the end of its session never leaves it alive, 200 rounds", async () => {
    for (let round = 0; round < 200; round++) {
      // A user per round: each round's DELETE stays far under the tier's requests per minute.
      const mine = await signUp();
      const device = await signIn(mine.user.email, { device_name: `race ${round}` });
      const id = sessionIdOfToken(device.access_token);
      const [refreshed, ended] = await Promise.all([
        post(auth, "/refresh", { refresh_token: device.refresh_token }, from()),
        end(mine.access_token, id),
      ]);
      expect(ended.status).toBe(204);
      if (refreshed.status === 200) {
        const successor = ((await refreshed.json()) as SessionBody).refresh_token;
        expect((await post(auth, "/refresh", { refresh_token: successor }, from())).status).toBe(401);
      } else {
        expect(refreshed.status).toBe(401);
      }
    }
  }, 120_000);

  test("at the tier's request limit: 429 with Retry-After", async () => {
    const mine = await signUp();
    let last: Response | undefined;
    for (let i = 0; i < 100 && last?.status !== 429; i++) last = await get(auth, "/sessions", mine.access_token);
    expect(last?.status).toBe(429);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
    // DELETE draws on the same budget: refused before it ends anything.
    const refused = await end(mine.access_token, sessionIdOfToken(mine.access_token));
    expect(refused.status).toBe(429);
    expect((await post(auth, "/refresh", { refresh_token: mine.refresh_token }, from())).status).toBe(200);
  });
});
