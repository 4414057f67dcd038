// Strategy: every service as a separate in-process instance on one PostgreSQL and Redis
// (lifecycle-world.ts); users sign up through auth's API, put data into every service through
// their APIs (chat turn, memories in the Qdrant fake, an agent run left running, a Stripe
// subscription through checkout and its webhook), then delete their account through
// `DELETE /auth/me`. Erasure is checked in the database itself (every table with a user_id),
// in the Qdrant fake and in the requests the Stripe fake received.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeJwt } from "jose";
import { billingConfig } from "../../src/billing/config";
import type { BillingContext } from "../../src/billing/context";
import { eraseUser } from "../../src/billing/user-data";
import { databaseLedger } from "../../src/shared/auth/revocation-ledger";
import { SessionRevocations } from "../../src/shared/auth/revocations";
import { DEFAULT_CLOCK_TOLERANCE_S } from "../../src/shared/auth/verifier";
import { MemoryBus } from "../../src/shared/bus/memory-bus";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import { rateLimiterFor } from "../../src/shared/rate-limit";
import { eventually } from "../../src/shared/testing";
import { connectDevice } from "../chat/gateway/helpers";
import { errorCode, PASSWORD, post, randomIp, registerUser } from "./helpers";
import { rowsOfUser, type SignedIn, startWorld, type World } from "./lifecycle-world";

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.ctx.close();
});

// Each from its own address: the per-IP refresh budget is not what these tests are about.
const refresh = (token: string) =>
  post(world.auth.url, "/refresh", { refresh_token: token }, { "x-forwarded-for": randomIp() });
const me = (token: string) => world.call(world.auth, "GET", "/auth/me", token);

describe("DELETE /auth/me", () => {
  test("an erased account's ended sessions stay refused by a process that starts after Redis lost its copy", async () => {
    const user = await world.signUp();
    const other = await world.login(user.email);
    expect((await world.deleteAccount(user)).status).toBe(202);
    expect(await world.erased(user.userId)).toEqual({ "auth.deleted_users": 1 });
    // The user's sessions rows are gone with the account; a process starting now with an empty
    // Redis (a fresh key prefix, a bus of its own) learns of revocations from the ledger alone.
    const sessionIds = [user.accessToken, other.accessToken].map((token) => decodeJwt(token).sid as string);
    const platform = world.auth.platform;
    const ledger = databaseLedger(platform.db, (platform.env.ACCESS_TOKEN_TTL_S + DEFAULT_CLOCK_TOLERANCE_S) * 1000);
    const fresh = new SessionRevocations({
      bus: new MemoryBus(),
      keys: createKeys(`t:fresh-${crypto.randomUUID()}`),
      logger: silentLogger(),
      ledger,
    });
    await fresh.start();
    expect(await Promise.all(sessionIds.map((id) => fresh.isRevoked(id)))).toEqual([true, true]);
    await fresh.close();
  });

  test("ends every session at once and erases the user in every service; only deleted_users keeps the id", async () => {
    const user = await world.signUp();
    const other = await world.login(user.email);
    const seeded = await world.seed(user);
    const bystander = await world.signUp();
    await world.seed(bystander);
    const closes: number[] = [];
    const device = await connectDevice(world.ctx, {
      url: `${world.chat.url.replace(/^http/, "ws")}/api/v1/ws/device`,
      userId: user.userId,
      token: () => other.accessToken,
    });
    device.on("close", ({ code }) => closes.push(code));
    expect((await rowsOfUser(world.sql, user.userId))["agent.agent_run_logs"]).toBe(1);
    expect(world.qdrantPoints(user.userId)).toHaveLength(2);

    const marketCounts = async () =>
      (await world.sql`select install_count, rating_count from plugins.plugins where id = ${seeded.marketPluginId}`)[0];
    const before = await marketCounts();

    const deleted = await world.deleteAccount(user);
    expect(deleted.status).toBe(202);
    expect(deleted.body).toEqual({ status: "deleting", deleted_at: expect.any(String) });

    // Every session, not only the caller's: refresh tokens, access tokens, the device socket.
    expect((await refresh(user.refreshToken)).status).toBe(401);
    expect((await refresh(other.refreshToken)).status).toBe(401);
    expect((await me(user.accessToken)).status).toBe(401);
    expect((await world.call(world.chat, "GET", "/chat/conversations", other.accessToken)).status).toBe(401);
    expect(
      await eventually(
        () => closes,
        (seen) => seen.length > 0,
      ),
    ).toEqual([4403]);
    // Sign-in refused, the same answer as a wrong password.
    const login = await post(world.auth.url, "/login", { email: user.email, password: PASSWORD });
    expect({ status: login.status, code: await errorCode(login) }).toEqual({
      status: 401,
      code: "invalid_credentials",
    });

    expect(await world.erased(user.userId)).toEqual({ "auth.deleted_users": 1 });
    expect(world.qdrantPoints(user.userId)).toEqual([]);
    const stripeCalls = world.stripe.requests.map((request) => `${request.method} ${request.path}`);
    expect(stripeCalls).toContain(`DELETE /v1/subscriptions/${seeded.subscriptionId}`);
    expect(stripeCalls).toContain(`DELETE /v1/customers/${seeded.customerId}`);
    expect(world.stripe.customers.has(seeded.customerId)).toBe(false);
    // The confirmation mail went to the address the account had.
    const confirmations = await eventually(
      () => world.mailsTo(user.email).filter((mail) => mail.includes("Your Adiuva account was deleted")),
      (found) => found.length > 0,
    );
    expect(confirmations).toHaveLength(1);
    // Someone else's data is untouched.
    const left = await rowsOfUser(world.sql, bystander.userId);
    expect(left).toMatchObject({
      "auth.users": 1,
      "chat.conversations": 1,
      "agent.agent_configs": 1,
      "billing.subscriptions": 1,
      "plugins.developers": 1,
      "plugins.installs": 1,
      "plugins.reviews": 1,
    });
    // The user's install and rating left the market plugin's counters; the bystander's stay.
    expect(await marketCounts()).toEqual({
      install_count: before?.install_count - 1,
      rating_count: before?.rating_count - 1,
    });
    const [own] = await world.sql`select count(*)::int as n from plugins.plugins where id = ${seeded.ownPluginId}`;
    expect(own?.n).toBe(0);
    expect(world.qdrantPoints(bystander.userId)).toHaveLength(2);
  });

  test("the same address registers again at once, as a new user", async () => {
    const user = await world.signUp();
    expect((await world.deleteAccount(user)).status).toBe(202);
    const again = await registerUser(world.auth.url, user.email);
    expect(again.user.email).toBe(user.email);
    expect(again.user.id).not.toBe(user.userId);
    expect((await me(again.access_token)).status).toBe(200);
  });

  test("a wrong password is 403 and deletes nothing; no token is 401; bad input 422", async () => {
    const user = await world.signUp();
    const wrong = await world.deleteAccount(user, "not the password");
    expect({ status: wrong.status, code: wrong.body.error.code }).toEqual({ status: 403, code: "invalid_credentials" });
    expect((await me(user.accessToken)).status).toBe(200);
    const anonymous = await world.call(world.auth, "DELETE", "/auth/me", undefined, { password: PASSWORD });
    expect(anonymous.status).toBe(401);
    const missing = await world.call(world.auth, "DELETE", "/auth/me", user.accessToken, {});
    expect(missing.status).toBe(422);
    const extra = await world.call(world.auth, "DELETE", "/auth/me", user.accessToken, { password: PASSWORD, x: 1 });
    expect(extra.status).toBe(422);
  });

  test("another user's token deletes that user, never the first", async () => {
    const [ada, bob] = [await world.signUp(), await world.signUp()];
    // Bob's token with Ada's password: Bob's own password check fails.
    expect((await world.call(world.auth, "DELETE", "/auth/me", bob.accessToken, { password: "wrong" })).status).toBe(
      403,
    );
    expect((await world.deleteAccount(bob)).status).toBe(202);
    expect((await me(ada.accessToken)).status).toBe(200);
    expect((await me(bob.accessToken)).status).toBe(401);
  });

  test("rate-limited: the sixth attempt in a minute is 429 with Retry-After", async () => {
    const user = await world.signUp();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await world.deleteAccount(user, `wrong-${i}`)).status);
    expect(statuses).toEqual([403, 403, 403, 403, 403]);
    // Even with the right password now: the route's own budget is spent.
    const refused = await world.deleteAccount(user);
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 429, code: "rate_limited" });
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(refused.headers.get("ratelimit-policy")).toContain('"auth-delete";q=5;w=60');
    expect((await me(user.accessToken)).status).toBe(200);
  });
});

describe("billing's erasure", () => {
  test("Stripe down: it throws (to be redelivered) and keeps the rows; afterwards it finishes, and running it again is fine", async () => {
    const user = await world.signUp();
    const seeded = await world.seed(user);
    const ctx: BillingContext = {
      platform: world.billing.platform,
      db: world.billing.platform.db,
      logger: world.billing.platform.logger,
      config: billingConfig(world.billing.platform.env),
      limiter: rateLimiterFor(world.billing.platform),
      notifyOutbox: () => {},
    };
    world.stripe.unavailable = true;
    try {
      await expect(eraseUser(ctx, user.userId)).rejects.toThrow();
    } finally {
      world.stripe.unavailable = false;
    }
    expect((await rowsOfUser(world.sql, user.userId))["billing.customers"]).toBe(1);
    await eraseUser(ctx, user.userId);
    expect((await rowsOfUser(world.sql, user.userId))["billing.customers"]).toBe(0);
    expect(world.stripe.customers.has(seeded.customerId)).toBe(false);
    // Redelivered after it already worked: the customer is gone in Stripe, which counts as done.
    await eraseUser(ctx, user.userId);
  });
});

describe("deletion racing sign-ins and refreshes", () => {
  test("no session survives: 200 rounds of a refresh loop and a login loop against the deletion", async () => {
    const rounds = Number(process.env.DELETION_RACE_ROUNDS ?? 200);
    let survivors = 0;
    for (let round = 0; round < rounds; round++) {
      const email = `race-${crypto.randomUUID().slice(0, 8)}@example.com`;
      const registered = await registerUser(world.auth.url, email);
      const user: SignedIn = {
        userId: registered.user.id,
        email,
        accessToken: registered.access_token,
        refreshToken: registered.refresh_token,
      };
      const tokens = { refresh: [user.refreshToken], access: [user.accessToken] };
      let deleting = true;
      const refreshLoop = (async () => {
        let current = user.refreshToken;
        while (deleting) {
          const response = await refresh(current);
          if (response.status !== 200) break;
          const body = (await response.json()) as { access_token: string; refresh_token: string };
          current = body.refresh_token;
          tokens.refresh.push(current);
          tokens.access.push(body.access_token);
        }
      })();
      const loginLoop = (async () => {
        while (deleting) {
          const response = await post(
            world.auth.url,
            "/login",
            { email, password: PASSWORD },
            { "x-forwarded-for": randomIp() },
          );
          if (response.status !== 200) break;
          const body = (await response.json()) as { access_token: string; refresh_token: string };
          tokens.refresh.push(body.refresh_token);
          tokens.access.push(body.access_token);
        }
      })();
      const deleted = await world.deleteAccount(user);
      deleting = false;
      await Promise.all([refreshLoop, loginLoop]);
      expect(deleted.status).toBe(202);
      for (const token of tokens.refresh) if ((await refresh(token)).status === 200) survivors += 1;
      for (const token of tokens.access) if ((await me(token)).status !== 401) survivors += 1;
    }
    expect(survivors).toBe(0);
  }, 300_000);
});
