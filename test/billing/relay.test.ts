// Two relays (two billing instances, e.g. during a rolling deploy) drain one outbox into one
// stream on the real PostgreSQL and Redis: every change arrives once, in commit order.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { migrations } from "../../src/billing/migrations";
import { OutboxRelay } from "../../src/billing/outbox";
import { outbox } from "../../src/billing/tables";
import { migrate } from "../../src/shared/db";
import { TierChangedEvent } from "../../src/shared/events/tier-changed";
import { silentLogger } from "../../src/shared/logger";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { TIERS } from "../../src/shared/tiers";

let ctx: TestContext;
let platforms: Platform[];
beforeAll(async () => {
  ctx = await createTestContext();
  platforms = [await ctx.platform({ service: "billing" }), await ctx.platform({ service: "billing" })];
  await migrate(platforms[0]!.db, "billing", migrations);
});
afterAll(() => ctx.close());

test("two relays publish every row exactly once, in outbox order", async () => {
  const userId = `user-${crypto.randomUUID()}`;
  const rows = Array.from({ length: 60 }, (_, index) => ({
    userId,
    event: {
      eventId: crypto.randomUUID(),
      userId,
      tier: TIERS[index % TIERS.length]!,
      reason: "test",
      occurredAt: 1_000 + index,
    },
  }));
  await platforms[0]!.db.insert(outbox).values(rows);
  const relays = platforms.map((platform) => new OutboxRelay(platform, silentLogger(), { batchSize: 7, pollMs: 10 }));
  for (const relay of relays) relay.start();
  try {
    const left = await eventually(
      () => relays[0]!.pending(),
      (n) => n === 0,
    );
    expect(left).toBe(0);
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
  }
  const redis = new Redis(ctx.redisUrl);
  try {
    const entries = await redis.xrange(platforms[0]!.keys.tierChangedStream, "-", "+");
    const published = entries.map(([, fields]) => TierChangedEvent.parse(JSON.parse(fields[1] ?? "null")).eventId);
    expect(published).toEqual(rows.map((row) => row.event.eventId));
  } finally {
    redis.disconnect();
  }
});
