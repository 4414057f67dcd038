// Asking another service over a shared queue (src/shared/queue-request.ts), on the real Redis:
// the question's job, the answer on the reply channel, and what happens to the job when nobody
// waits for it any more.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { z } from "zod";
import { openSharedJobQueue } from "../../src/shared/jobs";
import type { Platform } from "../../src/shared/platform";
import { createQueueRequester, type RequestJob } from "../../src/shared/queue-request";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";

interface Question extends RequestJob {
  text: string;
}
const Answer = z.object({ requestId: z.string(), text: z.string() });

let ctx: TestContext;
let platform: Platform;
beforeAll(async () => {
  ctx = await createTestContext();
  platform = await ctx.platform();
});
afterAll(() => ctx.close());

/** A requester on its own queue and reply channel; `answer` makes a replica that answers (or not) each job. */
function requester(timeoutMs: number) {
  const name = `questions-${crypto.randomUUID()}`;
  const queue = openSharedJobQueue<Question>(platform, name, { attempts: 1 });
  const replyChannel = `${name}:replies:${platform.instanceId}`;
  const requests = createQueueRequester({ platform, queue, replyChannel, replySchema: Answer, timeoutMs });
  ctx.defer(() => requests.close());
  const replica = openSharedJobQueue<Question>(platform, name, { attempts: 1 });
  ctx.defer(() => replica.close());
  /** Each job is answered with the messages `reply` gives, in order, on the asker's reply channel. */
  const answer = (reply: (job: Question) => string[]) =>
    replica.process(
      async (job) => {
        for (const text of reply(job.data)) await platform.bus.publish(replyChannel, text);
      },
      { concurrency: 4 },
    );
  return { requests, queue, answer };
}

describe("queue requester", () => {
  test("a question is answered on the asker's reply channel, matched by its request id", async () => {
    const { requests, answer } = requester(5000);
    answer((job) => [JSON.stringify({ requestId: job.requestId, text: job.text.toUpperCase() })]);
    const outcomes = await Promise.all(["one", "two", "three"].map((text) => requests.ask({ text })));
    expect(outcomes.map((outcome) => (outcome.kind === "answered" ? outcome.reply.text : outcome.kind))).toEqual([
      "ONE",
      "TWO",
      "THREE",
    ]);
  });

  test("nobody answers in time: unanswered, and the job is withdrawn from the queue", async () => {
    const { requests, queue } = requester(300);
    const started = performance.now();
    expect(await requests.ask({ text: "anyone?" })).toEqual({ kind: "unanswered" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await eventually(
      () => queue.counts(),
      (counts) => counts.waiting === 0,
    );
  });

  test("the asker stops waiting (its signal): failed, and the job is withdrawn; an aborted signal queues nothing", async () => {
    const { requests, queue } = requester(5000);
    const stop = new AbortController();
    const asked = requests.ask({ text: "never mind" }, stop.signal);
    await eventually(
      () => queue.counts(),
      (counts) => counts.waiting === 1,
    );
    stop.abort();
    expect(await asked).toEqual({ kind: "failed", reason: "stopped" });
    await eventually(
      () => queue.counts(),
      (counts) => counts.waiting === 0,
    );
    expect(await requests.ask({ text: "too late" }, AbortSignal.abort())).toEqual({
      kind: "failed",
      reason: "stopped",
    });
    expect((await queue.counts()).waiting).toBe(0);
  });

  test("an answer this side cannot read ends the wait as a failure; junk without a request id is ignored", async () => {
    const { requests, answer } = requester(5000);
    answer((job) => [
      ...["not json", "null", "[]", '{"text":"no id"}'],
      JSON.stringify({ requestId: job.requestId, text: 42 }),
    ]);
    expect(await requests.ask({ text: "x" })).toEqual({ kind: "failed", reason: "unreadable reply" });
  });

  test("closing ends every wait at once", async () => {
    const { requests } = requester(5000);
    const asked = requests.ask({ text: "pending" });
    await Bun.sleep(50);
    await requests.close();
    expect(await asked).toEqual({ kind: "failed", reason: "closing" });
  });
});
