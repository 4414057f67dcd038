// One contract, three quota counters: Redis (shared by replicas, one Lua script), in-process, and
// Redis behind the per-instance fallback (while Redis answers it must behave exactly as Redis).
import { afterAll, describe, expect, test } from "bun:test";
import { FallbackQuotaCounter } from "../../src/chat/fallback-quota";
import { MemoryQuotaCounter, type QuotaCounter, RedisQuotaCounter } from "../../src/chat/quota";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { deleteKeysWithPrefix, randomSuffix, TEST_REDIS_TOPOLOGY } from "../../src/shared/testing";

const prefix = `t:${randomSuffix()}`;
const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "quota-test" });
afterAll(async () => {
  redis.disconnect();
  await deleteKeysWithPrefix(prefix);
});

const adapters: Array<[string, () => QuotaCounter]> = [
  ["memory", () => new MemoryQuotaCounter()],
  ["redis", () => new RedisQuotaCounter(redis, createKeys(prefix))],
  [
    "redis with fallback",
    () =>
      new FallbackQuotaCounter(new RedisQuotaCounter(redis, createKeys(prefix)), redis, createKeys(prefix), {
        isAvailable: () => true,
        timeoutMs: 2000,
        logger: silentLogger(),
      }),
  ],
];

for (const [name, open] of adapters) {
  describe(`quota contract: ${name}`, () => {
    test("allows up to the limit, then refuses without counting refusals", async () => {
      const quota = open();
      const subject = randomSuffix();
      const now = new Date("2030-01-01T23:59:00Z");
      const decisions = [];
      for (let i = 0; i < 4; i++) decisions.push(await quota.consume("chat", subject, 3, now));
      expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ]);
      expect(decisions[3]?.resetS).toBe(60);
    });

    test("subjects, names and days are counted apart", async () => {
      const quota = open();
      const subject = randomSuffix();
      const day1 = new Date("2030-02-01T10:00:00Z");
      const day2 = new Date("2030-02-02T00:00:01Z");
      expect((await quota.consume("chat", subject, 1, day1)).allowed).toBe(true);
      expect((await quota.consume("chat", subject, 1, day1)).allowed).toBe(false);
      expect((await quota.consume("chat", randomSuffix(), 1, day1)).allowed).toBe(true);
      expect((await quota.consume("other", subject, 1, day1)).allowed).toBe(true);
      expect((await quota.consume("chat", subject, 1, day2)).allowed).toBe(true);
    });

    test("a refund gives back one unit of the same day, never going below zero", async () => {
      const quota = open();
      const subject = randomSuffix();
      const now = new Date("2030-03-01T12:00:00Z");
      await quota.refund("chat", subject, now);
      expect((await quota.consume("chat", subject, 2, now)).remaining).toBe(1);
      expect((await quota.consume("chat", subject, 2, now)).remaining).toBe(0);
      await quota.refund("chat", subject, now);
      expect(await quota.consume("chat", subject, 2, now)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await quota.consume("chat", subject, 2, now)).allowed).toBe(false);
    });

    test("concurrent calls never exceed the limit", async () => {
      const quota = open();
      const subject = randomSuffix();
      const results = await Promise.all(Array.from({ length: 25 }, () => quota.consume("chat", subject, 10)));
      expect(results.filter((result) => result.allowed)).toHaveLength(10);
    });
  });
}
