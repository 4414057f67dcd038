// Login limits: the lockout store contract (Redis and in-process), growing lockout per account and
// per IP over HTTP, the per-IP request budget, and comparable work for unknown e-mail vs wrong password.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type LockoutStore, lockMs, MemoryLockoutStore, RedisLockoutStore } from "../../src/auth/lockout";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { createTestContext, randomSuffix, TEST_REDIS_URL, type TestContext } from "../../src/shared/testing";
import { errorCode, PASSWORD, post, randomIp, registerUser, startAuth, uniqueEmail } from "./helpers";

const redis = openRedis({ url: TEST_REDIS_URL, logger: silentLogger(), name: "lockout-contract" });
const keys = createKeys(`t:${randomSuffix()}`);
const policy = { threshold: 3, baseMs: 1000, maxMs: 5000 };

for (const [name, make] of [
  ["memory", () => new MemoryLockoutStore()],
  ["redis", () => new RedisLockoutStore(redis, keys)],
] as Array<[string, () => LockoutStore]>) {
  describe(`lockout store contract: ${name}`, () => {
    test("locks from the threshold on, doubling up to the cap; clear forgets", async () => {
      const store = make();
      const subject = randomSuffix();
      const locks = [];
      for (let i = 0; i < 7; i++) locks.push(await store.fail(subject, policy));
      expect(locks).toEqual([0, 0, 1000, 2000, 4000, 5000, 5000]);
      expect(await store.lockedFor(subject)).toBeGreaterThan(4000);
      await store.clear(subject);
      expect(await store.lockedFor(subject)).toBe(0);
      expect(await store.fail(subject, policy)).toBe(0);
    });

    test("subjects are independent", async () => {
      const store = make();
      for (let i = 0; i < 3; i++) await store.fail("a", policy);
      expect(await store.lockedFor("b")).toBe(0);
    });
  });
}

test("lockMs grows geometrically", () => {
  expect([2, 3, 4, 5].map((n) => lockMs(n, policy))).toEqual([0, 1000, 2000, 4000]);
});

let ctx: TestContext;
let base: string;
beforeAll(async () => {
  ctx = await createTestContext();
  base = (
    await startAuth(ctx, {
      env: {
        TRUSTED_PROXY_HOPS: "1",
        AUTH_LOCKOUT_THRESHOLD: "3",
        AUTH_IP_LOCKOUT_THRESHOLD: "6",
        AUTH_IP_REQUESTS_PER_MIN: "12",
      },
    })
  ).url;
});
afterAll(async () => {
  redis.disconnect();
  await ctx.close();
});

const attempt = (email: string, password: string, ip = randomIp()) =>
  post(base, "/login", { email, password }, { "x-forwarded-for": ip });

describe("login limits over HTTP", () => {
  test("an account is locked after repeated failures, with a growing Retry-After, from any IP", async () => {
    const { user } = await registerUser(base);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await attempt(user.email, "wrong password!")).status);
    expect(statuses).toEqual([401, 401, 401]);
    const locked = await attempt(user.email, PASSWORD);
    expect(locked.status).toBe(429);
    expect(await errorCode(locked)).toBe("login_locked");
    expect(locked.headers.get("retry-after")).toBe("30");
  });

  test("an unknown e-mail is locked exactly like a real one, so the lock reveals nothing", async () => {
    const email = uniqueEmail();
    for (let i = 0; i < 3; i++) expect((await attempt(email, "wrong password!")).status).toBe(401);
    expect((await attempt(email, "wrong password!")).status).toBe(429);
  });

  test("an IP failing across many accounts is locked too", async () => {
    const ip = randomIp();
    for (let i = 0; i < 6; i++) expect((await attempt(uniqueEmail(), "wrong password!", ip)).status).toBe(401);
    const { user } = await registerUser(base);
    expect((await attempt(user.email, PASSWORD, ip)).status).toBe(429);
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
  });

  test("a success clears the account's failures", async () => {
    const { user } = await registerUser(base);
    for (let i = 0; i < 2; i++) await attempt(user.email, "wrong password!");
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await attempt(user.email, "wrong password!")).status).toBe(401);
  });

  test("one IP gets a bounded number of login/register requests per minute", async () => {
    const { user } = await registerUser(base);
    const ip = randomIp();
    const statuses = [];
    for (let i = 0; i < 13; i++) {
      const response = await post(
        base,
        "/register",
        { email: user.email, password: PASSWORD },
        { "x-forwarded-for": ip },
      );
      statuses.push(response.status);
    }
    expect(statuses).toEqual([...Array(12).fill(409), 429]);
    const limited = await attempt(user.email, PASSWORD, ip);
    expect(limited.status).toBe(429);
    expect(await errorCode(limited)).toBe("rate_limited");
    expect(limited.headers.get("ratelimit-policy")).toBe('"auth-ip";q=12;w=60');
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("timing", () => {
  test("unknown e-mail and wrong password cost comparable time (both verify one argon2 hash)", async () => {
    // Production argon2 settings, so the hash dominates; medians of several tries tame noise.
    const timed = await createTestContext();
    try {
      const server = await startAuth(timed, {
        env: { TRUSTED_PROXY_HOPS: "1", PASSWORD_HASH_MEMORY_KIB: "19456", PASSWORD_HASH_TIME_COST: "2" },
      });
      const { user } = await registerUser(server.url);
      const measure = async (email: string) => {
        const times = [];
        for (let i = 0; i < 5; i++) {
          const started = performance.now();
          await post(server.url, "/login", { email, password: "wrong password!" }, { "x-forwarded-for": randomIp() });
          times.push(performance.now() - started);
        }
        return times.sort((a, b) => a - b)[2]!;
      };
      const [wrong, unknown] = [await measure(user.email), await measure(uniqueEmail())];
      expect(unknown / wrong).toBeGreaterThan(0.5);
      expect(unknown / wrong).toBeLessThan(2);
    } finally {
      await timed.close();
    }
  });
});
