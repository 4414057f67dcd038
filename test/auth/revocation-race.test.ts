// Ending a session races a thief who rotates its refresh token as fast as the server answers. Real
// concurrency against real PostgreSQL, hundreds of rounds per way of ending a session: the thief's
// chain must be dead once the ending has returned, every round. A round "survives" when the thief
// can still rotate after the logout, password change, reuse detection or downgrade has completed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { publishTierChanged } from "../../src/shared/events/tier-changed";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { PASSWORD, post, randomIp, registerUser, type SessionBody, startAuth } from "./helpers";

const ROUNDS = 150;
const AT_ONCE = 5;
/** Rotations the thief must manage after the ending returned for the round to count as survived. */
const ROTATIONS_AFTER_END = 3;

let ctx: TestContext;
let base: string;
let billing: Platform;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  base = (
    await startAuth(ctx, {
      env: { TRUSTED_PROXY_HOPS: "1", AUTH_IP_REQUESTS_PER_MIN: "100000" },
    })
  ).url;
  billing = await ctx.platform({ service: "billing" });
  sql = postgres(ctx.databaseUrl, { max: 4, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
  await ctx.close();
});

const refresh = (token: string) => post(base, "/refresh", { refresh_token: token }, { "x-forwarded-for": randomIp() });

async function login(email: string, password = PASSWORD): Promise<SessionBody> {
  const response = await post(base, "/login", { email, password }, { "x-forwarded-for": randomIp() });
  if (response.status !== 200) throw new Error(`login failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as SessionBody;
}

/**
 * Rotates `token` in a tight loop while `end()` runs. Returns whether the thief kept a working chain:
 * ROTATIONS_AFTER_END successful rotations after `end()` resolved, and a last token still accepted.
 */
async function thiefSurvives(token: string, end: () => Promise<void>): Promise<boolean> {
  let ended = false;
  let latest = token;
  const thief = (async () => {
    for (let after = 0; after < ROTATIONS_AFTER_END; ) {
      const response = await refresh(latest);
      if (response.status !== 200) return false;
      latest = ((await response.json()) as SessionBody).refresh_token;
      if (ended) after++;
    }
    return true;
  })();
  // Vary where in the thief's loop the ending lands.
  for (let turns = Math.floor(Math.random() * 4); turns > 0; turns--) await new Promise(setImmediate);
  await end();
  ended = true;
  const kept = await thief;
  const lastAccepted = (await refresh(latest)).status === 200;
  return kept || lastAccepted;
}

/** Live refresh tokens left in ended sessions of a user: must be none. */
async function liveTokensInEndedSessions(userId: string): Promise<number> {
  const [row] = await sql<[{ count: string }]>`
    select count(*) from auth.refresh_tokens t join auth.sessions s on s.id = t.family_id
    where t.user_id = ${userId} and s.revoked_at is not null and t.revoked_at is null`;
  return Number(row.count);
}

async function rounds(play: () => Promise<{ survived: boolean; userId: string }>) {
  let survivors = 0;
  let leftovers = 0;
  for (let done = 0; done < ROUNDS; done += AT_ONCE) {
    const results = await Promise.all(Array.from({ length: AT_ONCE }, play));
    for (const result of results) {
      if (result.survived) survivors++;
      leftovers += await liveTokensInEndedSessions(result.userId);
    }
  }
  return { survivors, leftovers };
}

describe("ending a session cannot be outrun by a refresh loop", () => {
  test(`log out everywhere, ${ROUNDS} rounds: no survivor`, async () => {
    const result = await rounds(async () => {
      const victim = await registerUser(base);
      const stolen = await login(victim.user.email);
      const survived = await thiefSurvives(stolen.refresh_token, async () => {
        const response = await post(base, "/logout", { all: true }, { authorization: `Bearer ${victim.access_token}` });
        if (response.status !== 204) throw new Error(`logout failed: ${response.status}`);
      });
      return { survived, userId: victim.user.id };
    });
    expect(result).toEqual({ survivors: 0, leftovers: 0 });
  }, 120_000);

  test(`password change, ${ROUNDS} rounds: no survivor`, async () => {
    const result = await rounds(async () => {
      const victim = await registerUser(base);
      const stolen = await login(victim.user.email);
      const survived = await thiefSurvives(stolen.refresh_token, async () => {
        const response = await fetch(`${base}/api/v1/auth/me`, {
          method: "PUT",
          headers: { "content-type": "application/json", authorization: `Bearer ${victim.access_token}` },
          body: JSON.stringify({ current_password: PASSWORD, new_password: "a whole new passphrase" }),
        });
        if (response.status !== 200) throw new Error(`password change failed: ${response.status}`);
      });
      return { survived, userId: victim.user.id };
    });
    expect(result).toEqual({ survivors: 0, leftovers: 0 });
  }, 120_000);

  test(`reuse detection, ${ROUNDS} rounds: no survivor`, async () => {
    const result = await rounds(async () => {
      const victim = await registerUser(base);
      const first = await refresh(victim.refresh_token);
      const stolen = ((await first.json()) as SessionBody).refresh_token;
      // The victim's old token was rotated long ago, as far as the grace window can tell.
      await sql`update auth.refresh_tokens set used_at = now() - interval '1 hour'
                where user_id = ${victim.user.id} and used_at is not null`;
      const survived = await thiefSurvives(stolen, async () => {
        const replay = await refresh(victim.refresh_token);
        if (replay.status !== 401) throw new Error(`replay was accepted: ${replay.status}`);
      });
      return { survived, userId: victim.user.id };
    });
    expect(result).toEqual({ survivors: 0, leftovers: 0 });
  }, 120_000);

  test(`tier downgrade, ${ROUNDS} rounds: no survivor`, async () => {
    const result = await rounds(async () => {
      const victim = await registerUser(base);
      await sql`update auth.users set tier = 'pro' where id = ${victim.user.id}`;
      const survived = await thiefSurvives(victim.refresh_token, async () => {
        await publishTierChanged(billing, {
          eventId: crypto.randomUUID(),
          userId: victim.user.id,
          tier: "free",
          reason: "test",
          occurredAt: Date.now(),
        });
        await eventually(
          async () => (await sql`select tier from auth.users where id = ${victim.user.id}`)[0]?.tier,
          (tier) => tier === "free",
        );
      });
      return { survived, userId: victim.user.id };
    });
    expect(result).toEqual({ survivors: 0, leftovers: 0 });
  }, 120_000);
});
