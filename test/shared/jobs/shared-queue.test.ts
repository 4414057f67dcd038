// `openSharedJobQueue` in embedded mode (no Redis): a producer service and a consumer service of one
// process meet on one in-process queue, which lives until its last holder closes it. With Redis each
// holder has its own BullMQ connections and the contract test covers them.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { openSharedJobQueue } from "../../../src/shared/jobs";
import type { Platform } from "../../../src/shared/platform";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";

let ctx: TestContext;
let platform: Platform;
beforeAll(async () => {
  ctx = await createTestContext();
  platform = await ctx.platform({ redis: false });
});
afterAll(() => ctx.close());

test("two holders share one queue until the last one closes it", async () => {
  const producer = openSharedJobQueue<{ n: number }>(platform, "shared");
  const consumer = openSharedJobQueue<{ n: number }>(platform, "shared");
  const seen: number[] = [];
  consumer.process(
    async (job) => {
      seen.push(job.data.n);
    },
    { concurrency: 1 },
  );
  await producer.add("a", { n: 1 });
  await eventually(
    () => seen,
    (values) => values.length === 1,
  );
  await producer.close();
  await producer.close();
  // The producer leaving (twice) does not close the queue under the consumer.
  await consumer.add("b", { n: 2 });
  await eventually(
    () => seen,
    (values) => values.length === 2,
  );
  await consumer.close();
  // Once every holder closed it, the name opens a fresh queue.
  const again = openSharedJobQueue<{ n: number }>(platform, "shared");
  await again.add("c", { n: 3 });
  expect(await again.counts()).toEqual({ waiting: 1, active: 0 });
  await again.close();
  expect(seen).toEqual([1, 2]);
});

test("different names or platforms are different queues", async () => {
  const other = await ctx.platform({ redis: false });
  const one = openSharedJobQueue<number>(platform, "x");
  const two = openSharedJobQueue<number>(platform, "y");
  const three = openSharedJobQueue<number>(other, "x");
  await one.add("j", 1);
  expect([await one.counts(), await two.counts(), await three.counts()]).toEqual([
    { waiting: 1, active: 0 },
    { waiting: 0, active: 0 },
    { waiting: 0, active: 0 },
  ]);
  await Promise.all([one.close(), two.close(), three.close()]);
});
