// Sign-in limits: the lockout store contract (Redis and in-process, one suite run against both),
// the lockout per account and IP, per IP and per account over HTTP, password changes counted as
// sign-ins, the per-IP login and refresh budgets, and comparable work for unknown e-mail vs wrong
// password. Parallel attempts over HTTP are in login-race.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type AttemptOutcome,
  BUSY_RETRY_MS,
  type LockoutPolicy,
  type LockoutStore,
  type LockoutSubject,
  lockMs,
  MemoryLockoutStore,
  RedisLockoutStore,
} from "../../src/auth/lockout";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import {
  createTestContext,
  eventually,
  randomSuffix,
  TEST_REDIS_TOPOLOGY,
  type TestContext,
} from "../../src/shared/testing";
import { errorCode, PASSWORD, post, randomIp, registerUser, startAuth, uniqueEmail } from "./helpers";

const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "lockout-contract" });
const keys = createKeys(`t:${randomSuffix()}`);
const policy = { threshold: 3, baseMs: 1000, maxMs: 5000 };
const subjectOf = (p: LockoutPolicy = policy, clearOnSuccess = false): LockoutSubject => ({
  key: randomSuffix(),
  policy: p,
  clearOnSuccess,
});

/** One whole attempt: reserve, then settle with `outcome`; the lock it caused, or "refused". */
async function tryOnce(store: LockoutStore, subjects: LockoutSubject[], outcome: AttemptOutcome) {
  const reservation = await store.reserve(subjects);
  if (!reservation.granted) return "refused";
  return store.settle(subjects, reservation.id, outcome);
}

for (const [name, make] of [
  ["memory", (reservationMs?: number) => new MemoryLockoutStore(reservationMs)],
  ["redis", (reservationMs?: number) => new RedisLockoutStore(redis, keys, reservationMs)],
] as Array<[string, (reservationMs?: number) => LockoutStore]>) {
  describe(`lockout store contract: ${name}`, () => {
    test("locks from the threshold on and refuses while locked, with the lock as the wait", async () => {
      const store = make();
      const subject = subjectOf();
      const locks = [];
      for (let i = 0; i < 3; i++) locks.push(await tryOnce(store, [subject], "failure"));
      expect(locks).toEqual([0, 0, 1000]);
      expect(await store.lockedFor(subject.key)).toBeGreaterThan(900);
      const refused = await store.reserve([subject]);
      expect(refused.granted).toBe(false);
      expect(refused.granted ? 0 : refused.retryMs).toBeGreaterThan(900);
    });

    test("each failure past the threshold doubles the lock up to the cap", async () => {
      const store = make();
      const subject = subjectOf({ threshold: 2, baseMs: 20, maxMs: 80, windowMs: 60_000 });
      const locks = [];
      for (let i = 0; i < 6; i++) {
        await eventually(
          () => store.lockedFor(subject.key),
          (ms) => ms === 0,
          1000,
          1,
        );
        locks.push(await tryOnce(store, [subject], "failure"));
      }
      expect(locks).toEqual([0, 20, 40, 80, 80, 80]);
    });

    test("a success clears the subjects marked so and only frees its place in the others", async () => {
      const store = make();
      const [pair, shared] = [subjectOf(policy, true), subjectOf()];
      for (let i = 0; i < 2; i++) await tryOnce(store, [pair, shared], "failure");
      expect(await tryOnce(store, [pair, shared], "success")).toBe(0);
      // The pair starts again; the shared subject still holds two failures, so one more locks it.
      expect(await tryOnce(store, [pair, shared], "failure")).toBe(1000);
      expect(await store.lockedFor(pair.key)).toBe(0);
      expect(await store.lockedFor(shared.key)).toBeGreaterThan(900);
    });

    test("an abandoned attempt frees its place without counting", async () => {
      const store = make();
      const subject = subjectOf();
      for (let i = 0; i < 10; i++) expect(await tryOnce(store, [subject], "abandoned")).toBe(0);
      expect(await tryOnce(store, [subject], "failure")).toBe(0);
    });

    test("a reservation is all or nothing: one locked subject refuses it in every other", async () => {
      const store = make();
      const [locked, free] = [subjectOf(), subjectOf()];
      for (let i = 0; i < 3; i++) await tryOnce(store, [locked], "failure");
      for (let i = 0; i < 5; i++) expect(await tryOnce(store, [free, locked], "failure")).toBe("refused");
      // Nothing was reserved or counted in `free`: three parallel attempts still fit below its threshold.
      const parallel = await Promise.all([1, 2, 3].map(() => store.reserve([free])));
      expect(parallel.map((r) => r.granted)).toEqual([true, true, true]);
    });

    test("subjects are independent", async () => {
      const store = make();
      const [a, b] = [subjectOf(), subjectOf()];
      for (let i = 0; i < 3; i++) await tryOnce(store, [a], "failure");
      expect(await store.lockedFor(b.key)).toBe(0);
      expect((await store.reserve([b])).granted).toBe(true);
    });

    test("parallel attempts: never more verified than can fail before the lock, over many rounds", async () => {
      const store = make();
      for (let round = 0; round < 300; round++) {
        const [pair, account] = [subjectOf({ threshold: 5, baseMs: 60_000, maxMs: 60_000 }, true), subjectOf()];
        // 19 wrong and 1 right at once: the account (threshold 3) lets at most 3 through.
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, (_, i) => tryOnce(store, [pair, account], i === 7 ? "success" : "failure")),
        );
        const wrongVerified = outcomes.filter((outcome, i) => i !== 7 && outcome !== "refused").length;
        const rightVerified = outcomes[7] !== "refused";
        const locked = (await store.lockedFor(account.key)) > 0;
        // Unless the right one holds a place to the end, three failures lock the account.
        expect({ round, wrongVerified: Math.min(wrongVerified, 4), lockedOrRight: locked || rightVerified }).toEqual({
          round,
          wrongVerified: locked ? 3 : wrongVerified,
          lockedOrRight: true,
        });
        expect(wrongVerified).toBeLessThanOrEqual(3);
      }
    });

    test("a success with other attempts of the subject in flight clears nothing", async () => {
      const store = make();
      const pair = subjectOf(policy, true);
      await tryOnce(store, [pair], "failure");
      const [right, wrong] = await Promise.all([store.reserve([pair]), store.reserve([pair])]);
      if (!right.granted || !wrong.granted) throw new Error("both attempts should get a place");
      await store.settle([pair], right.id, "success");
      expect(await store.settle([pair], wrong.id, "failure")).toBe(0);
      // The success cleared nothing: with the first two failures standing, this third one locks.
      expect(await tryOnce(store, [pair], "failure")).toBe(1000);
    });

    test("past the threshold only one attempt at a time is in flight", async () => {
      const store = make();
      const subject = subjectOf({ threshold: 2, baseMs: 1, maxMs: 1, windowMs: 60_000 });
      for (let round = 0; round < 100; round++) {
        await eventually(
          () => store.lockedFor(subject.key),
          (ms) => ms === 0,
          1000,
          1,
        );
        const reservations = await Promise.all(Array.from({ length: 20 }, () => store.reserve([subject])));
        const granted = reservations.filter((r) => r.granted);
        expect({ round, granted: granted.length }).toEqual({ round, granted: round === 0 ? 2 : 1 });
        for (const r of granted) await store.settle([subject], r.id, "failure");
      }
    });

    test("a reservation never settled stops holding its place once it expires", async () => {
      const store = make(50);
      const subject = subjectOf();
      // Three attempts reserved and never settled (a process that died mid-check) fill the threshold.
      for (let i = 0; i < 3; i++) expect((await store.reserve([subject])).granted).toBe(true);
      expect(await store.reserve([subject])).toEqual({ granted: false, retryMs: BUSY_RETRY_MS });
      const later = await eventually(
        () => store.reserve([subject]),
        (r) => r.granted,
      );
      expect(later.granted).toBe(true);
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
        AUTH_ACCOUNT_LOCKOUT_THRESHOLD: "8",
        AUTH_ACCOUNT_LOCKOUT_DELAY_S: "1",
        AUTH_IP_REQUESTS_PER_MIN: "12",
        AUTH_REFRESH_IP_REQUESTS_PER_MIN: "3",
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
const putMe = (token: string, body: unknown, ip: string) =>
  fetch(`${base}/api/v1/auth/me`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "x-forwarded-for": ip },
    body: JSON.stringify(body),
  });
const refusal = async (response: Response) => ({
  status: response.status,
  code: response.status === 429 ? await errorCode(response) : undefined,
  retryAfter: response.headers.get("retry-after"),
});

describe("login limits over HTTP", () => {
  test("failures from one IP lock that IP out of the account, with a growing Retry-After, not the owner elsewhere", async () => {
    const { user } = await registerUser(base);
    const attacker = randomIp();
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await attempt(user.email, "wrong password!", attacker)).status);
    expect(statuses).toEqual([401, 401, 401]);
    expect(await refusal(await attempt(user.email, PASSWORD, attacker))).toEqual({
      status: 429,
      code: "login_locked",
      retryAfter: "30",
    });
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
  });

  test("past the account-wide threshold every IP waits a short delay, then the owner gets in", async () => {
    const { user } = await registerUser(base);
    // Eight failures from eight addresses: no single address reaches its own lock.
    for (let i = 0; i < 8; i++) expect((await attempt(user.email, "wrong password!")).status).toBe(401);
    expect(await refusal(await attempt(user.email, PASSWORD))).toEqual({
      status: 429,
      code: "login_locked",
      retryAfter: "1",
    });
    const after = await eventually(
      () => attempt(user.email, PASSWORD),
      (response) => response.status !== 429,
      5000,
    );
    expect(after.status).toBe(200);
  });

  test("an unknown e-mail is locked exactly like a real one, so the lock reveals nothing", async () => {
    const email = uniqueEmail();
    const ip = randomIp();
    for (let i = 0; i < 3; i++) expect((await attempt(email, "wrong password!", ip)).status).toBe(401);
    expect(await refusal(await attempt(email, "wrong password!", ip))).toEqual({
      status: 429,
      code: "login_locked",
      retryAfter: "30",
    });
  });

  test("an IP failing across many accounts is locked too", async () => {
    const ip = randomIp();
    for (let i = 0; i < 6; i++) expect((await attempt(uniqueEmail(), "wrong password!", ip)).status).toBe(401);
    const { user } = await registerUser(base);
    expect((await attempt(user.email, PASSWORD, ip)).status).toBe(429);
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
  });

  test("a success clears the failures of the account from that IP", async () => {
    const { user } = await registerUser(base);
    const ip = randomIp();
    for (let i = 0; i < 2; i++) await attempt(user.email, "wrong password!", ip);
    expect((await attempt(user.email, PASSWORD, ip)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await attempt(user.email, "wrong password!", ip)).status).toBe(401);
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

describe("a password change counts as a sign-in attempt", () => {
  test("wrong current passwords from a stolen token lock the account from that IP, for PUT /me and login alike", async () => {
    const session = await registerUser(base);
    const ip = randomIp();
    const guess = { current_password: "not it at all", new_password: "another good one" };
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await putMe(session.access_token, guess, ip)).status);
    expect(statuses).toEqual([403, 403, 403]);
    const right = { current_password: PASSWORD, new_password: "another good one" };
    expect(await refusal(await putMe(session.access_token, right, ip))).toEqual({
      status: 429,
      code: "login_locked",
      retryAfter: "30",
    });
    expect((await attempt(session.user.email, PASSWORD, ip)).status).toBe(429);
    // The password is unchanged, and the owner elsewhere still signs in.
    expect((await attempt(session.user.email, PASSWORD)).status).toBe(200);
  });

  test("they count towards the account-wide threshold like failed logins", async () => {
    const session = await registerUser(base);
    const guess = { current_password: "not it at all", new_password: "another good one" };
    for (let i = 0; i < 4; i++) expect((await putMe(session.access_token, guess, randomIp())).status).toBe(403);
    for (let i = 0; i < 4; i++) expect((await attempt(session.user.email, "wrong password!")).status).toBe(401);
    expect((await attempt(session.user.email, PASSWORD)).status).toBe(429);
  });
});

describe("refresh limits", () => {
  test("one IP gets its own bounded number of refresh requests per minute", async () => {
    const ip = randomIp();
    const refresh = () => post(base, "/refresh", { refresh_token: "art_unknown" }, { "x-forwarded-for": ip });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await refresh()).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const limited = await refresh();
    expect(await errorCode(limited)).toBe("rate_limited");
    expect(limited.headers.get("ratelimit-policy")).toBe('"auth-refresh-ip";q=3;w=60');
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // A budget of its own: the same IP can still sign in, and another IP can still refresh.
    const { user } = await registerUser(base);
    expect((await attempt(user.email, PASSWORD, ip)).status).toBe(200);
    expect(
      (await post(base, "/refresh", { refresh_token: "art_unknown" }, { "x-forwarded-for": randomIp() })).status,
    ).toBe(401);
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
