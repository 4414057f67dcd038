// One contract, two adapters: the Redis limiter (one Lua script on Redis time) and the in-process
// limiter must make the same decisions.
import { afterAll, describe, expect, test } from "bun:test";
import { silentLogger } from "../../src/shared/logger";
import {
  FallbackRateLimiter,
  MemoryRateLimiter,
  type RateLimiter,
  RedisRateLimiter,
} from "../../src/shared/rate-limit";
import { openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, eventually, randomSuffix, TEST_REDIS_TOPOLOGY } from "../../src/shared/testing";

const prefix = `t:${randomSuffix()}`;
const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "rate-limit-contract" });
afterAll(async () => {
  await deleteKeysWithPrefix(prefix);
  redis.disconnect();
});

const adapters: Array<[string, () => RateLimiter]> = [
  ["memory", () => new MemoryRateLimiter()],
  ["redis", () => new RedisRateLimiter(redis)],
];
const HOUR = 3_600_000;

for (const [name, make] of adapters) {
  describe(`rate limiter contract: ${name}`, () => {
    const key = () => `${prefix}:${name}:${randomSuffix()}`;

    test("a full burst is admitted, then denied with a retry time of one emission interval", async () => {
      const limiter = make();
      const k = key();
      const rule = { limit: 5, windowMs: HOUR };
      const decisions = [];
      for (let i = 0; i < 6; i++) decisions.push(await limiter.check(k, rule));
      expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 4],
        [true, 3],
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ]);
      const denied = decisions[5]!;
      // One unit frees up every window/limit = 12 minutes.
      expect(denied.retryAfterMs).toBeGreaterThan(HOUR / 5 - 1000);
      expect(denied.retryAfterMs).toBeLessThanOrEqual(HOUR / 5);
      expect(decisions[4]!.resetMs).toBeGreaterThan(HOUR - 1000);
    });

    test("100 concurrent checks against a limit of 50 admit exactly 50", async () => {
      const limiter = make();
      const k = key();
      const results = await Promise.all(
        Array.from({ length: 100 }, () => limiter.check(k, { limit: 50, windowMs: HOUR })),
      );
      expect(results.filter((d) => d.allowed).length).toBe(50);
    });

    test("keys are independent and a cost takes several units at once, never partially", async () => {
      const limiter = make();
      const [a, b] = [key(), key()];
      const rule = { limit: 3, windowMs: HOUR };
      expect((await limiter.check(a, rule, 3)).allowed).toBe(true);
      expect((await limiter.check(a, rule)).allowed).toBe(false);
      expect((await limiter.check(b, rule, 2)).remaining).toBe(1);
      expect((await limiter.check(b, rule, 2)).allowed).toBe(false);
      expect((await limiter.check(b, rule, 1)).allowed).toBe(true);
    });

    test("units come back as time passes", async () => {
      const limiter = make();
      const k = key();
      const rule = { limit: 2, windowMs: 300 };
      await limiter.check(k, rule);
      await limiter.check(k, rule);
      expect((await limiter.check(k, rule)).allowed).toBe(false);
      const later = await eventually(
        () => limiter.check(k, rule),
        (d) => d.allowed,
        2000,
      );
      expect(later.allowed).toBe(true);
    });

    test("reset forgets a key", async () => {
      const limiter = make();
      const k = key();
      const rule = { limit: 1, windowMs: HOUR };
      await limiter.check(k, rule);
      expect((await limiter.check(k, rule)).allowed).toBe(false);
      await limiter.reset(k);
      expect((await limiter.check(k, rule)).allowed).toBe(true);
    });
  });
}

describe("fallback policy", () => {
  test("a shared store that hangs is abandoned after the timeout and the instance decides alone", async () => {
    const hanging: RateLimiter = { check: () => new Promise(() => {}), reset: async () => {} };
    let fallbacks = 0;
    const limiter = new FallbackRateLimiter(hanging, new MemoryRateLimiter(), {
      isAvailable: () => true,
      timeoutMs: 30,
      logger: silentLogger(),
      onFallback: () => fallbacks++,
    });
    const rule = { limit: 1, windowMs: HOUR };
    const first = await limiter.check("k", rule);
    const second = await limiter.check("k", rule);
    expect([first.allowed, first.source, second.allowed, fallbacks]).toEqual([true, "local", false, 2]);
  });

  test("a store known to be down is not even asked", async () => {
    let asked = 0;
    const shared: RateLimiter = {
      check: async () => {
        asked++;
        throw new Error("unreachable");
      },
      reset: async () => {},
    };
    const limiter = new FallbackRateLimiter(shared, new MemoryRateLimiter(), {
      isAvailable: () => false,
      timeoutMs: 1000,
      logger: silentLogger(),
    });
    expect((await limiter.check("k", { limit: 5, windowMs: HOUR })).source).toBe("local");
    expect(asked).toBe(0);
  });
});
