// Parallel password guesses over HTTP, on a real server with PostgreSQL, once with the Redis lockout
// store and once with the in-process one (`redis: false`). Each round fires 19 wrong passwords and
// the right one at one account at once and checks that no more wrong ones were verified (answered
// 401 rather than 429) than the lockout allows before it locks. Cheap argon2 settings keep
// hundreds of rounds fast. Before the fix every one of the 20 was verified.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { errorCode, PASSWORD, post, randomIp, registerUser, startAuth } from "./helpers";

const ROUNDS = 100;
const PAIR_THRESHOLD = 5;
const ACCOUNT_THRESHOLD = 8;

let ctx: TestContext;
const bases: Record<string, string> = {};
beforeAll(async () => {
  ctx = await createTestContext();
  const env = {
    TRUSTED_PROXY_HOPS: "1",
    AUTH_LOCKOUT_THRESHOLD: String(PAIR_THRESHOLD),
    AUTH_ACCOUNT_LOCKOUT_THRESHOLD: String(ACCOUNT_THRESHOLD),
    // Out of the way, so the subject under test is the one that binds.
    AUTH_IP_LOCKOUT_THRESHOLD: "1000000",
    AUTH_IP_REQUESTS_PER_MIN: "1000000",
  };
  bases.redis = (await startAuth(ctx, { env })).url;
  bases.memory = (await startAuth(ctx, { env, redis: false })).url;
});
afterAll(() => ctx.close());

/** 19 wrong passwords and the right one, all at once; `ipOf(i)` is the client address of the i-th. */
async function volley(base: string, email: string, ipOf: (i: number) => string) {
  const right = Math.floor(Math.random() * 20);
  const responses = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      post(
        base,
        "/login",
        { email, password: i === right ? PASSWORD : "wrong password!" },
        { "x-forwarded-for": ipOf(i) },
      ),
    ),
  );
  const refused = await Promise.all(
    responses.filter((r) => r.status === 429).map(async (r) => ({ status: r.status, code: await errorCode(r) })),
  );
  return {
    wrongVerified: responses.filter((r, i) => i !== right && r.status !== 429).map((r) => r.status),
    refused,
    rightVerified: responses[right]!.status !== 429,
  };
}

for (const store of ["redis", "memory"]) {
  describe(`parallel guesses (${store} lockout store)`, () => {
    test("from one IP: wrong ones verified stay within the threshold, the rest refused before any hashing", async () => {
      const base = bases[store]!;
      for (let round = 0; round < ROUNDS; round++) {
        const { user } = await registerUser(base);
        const ip = randomIp();
        const { wrongVerified, refused, rightVerified } = await volley(base, user.email, () => ip);
        // A success with nothing else in flight starts the pair's count afresh, once: only a volley
        // holding the right password gets up to a second threshold's worth of wrong ones checked.
        const bound = rightVerified ? 2 * PAIR_THRESHOLD - 1 : PAIR_THRESHOLD;
        expect({ round, rightVerified, tooMany: wrongVerified.length > bound }).toEqual({
          round,
          rightVerified,
          tooMany: false,
        });
        expect(refused.every((r) => r.code === "login_locked")).toBe(true);
        expect(wrongVerified.every((status) => status === 401)).toBe(true);
        // Without the right password among those verified, the failures locked that IP out of the account.
        if (!rightVerified)
          expect(
            (await post(base, "/login", { email: user.email, password: PASSWORD }, { "x-forwarded-for": ip })).status,
          ).toBe(429);
      }
    }, 120_000);

    test("from 20 IPs: at most the account-wide threshold of wrong ones are verified", async () => {
      const base = bases[store]!;
      for (let round = 0; round < ROUNDS; round++) {
        const { user } = await registerUser(base);
        const ips = Array.from({ length: 20 }, randomIp);
        const { wrongVerified, refused } = await volley(base, user.email, (i) => ips[i]!);
        expect({ round, tooMany: wrongVerified.length > ACCOUNT_THRESHOLD }).toEqual({ round, tooMany: false });
        expect(refused.every((r) => r.code === "login_locked")).toBe(true);
      }
    }, 120_000);
  });
}
