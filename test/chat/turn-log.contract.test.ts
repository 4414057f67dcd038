// One contract, two turn logs: Redis Streams (shared by every chat instance, one Lua admission
// script) and the in-process log of embedded mode. Admission and its per-user cap under real
// concurrency, the log's order and paging, the single claim of a turn's end, live delivery, the
// TTL after the end and ownership; then what only Redis does: leases and orphans, stops between
// instances, and one Cluster slot for every key of a turn.
import { afterAll, describe, expect, test } from "bun:test";
import { MemoryTurnLog } from "../../src/chat/turns/memory-turn-log";
import { RedisTurnLog } from "../../src/chat/turns/redis-turn-log";
import type { TurnEnd, TurnEntry, TurnLog, TurnRecord, TurnRef } from "../../src/chat/turns/turn-log";
import { RedisBus } from "../../src/shared/bus/redis-bus";
import { createKeys } from "../../src/shared/keys";
import { silentLogger } from "../../src/shared/logger";
import { openRedis } from "../../src/shared/redis";
import { hashTag, keySlot } from "../../src/shared/redis-slot";
import {
  deleteKeysWithPrefix,
  eventually,
  randomSuffix,
  scanTestKeys,
  TEST_REDIS_TOPOLOGY,
} from "../../src/shared/testing";

const prefix = `t:${randomSuffix()}`;
const keys = createKeys(prefix);
const redis = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "turn-log-test" });
const subscriber = openRedis({ topology: TEST_REDIS_TOPOLOGY, logger: silentLogger(), name: "turn-log-test-sub" });
// As the platform builds it: the bus publishes on the command connection.
const bus = new RedisBus(redis, subscriber);
const appendFailures: unknown[] = [];
afterAll(async () => {
  await bus.close();
  redis.disconnect();
  subscriber.disconnect();
  await deleteKeysWithPrefix(prefix);
});

const adapters: Array<[string, () => TurnLog]> = [
  ["redis", () => new RedisTurnLog(redis, bus, keys, (error) => appendFailures.push(error))],
  ["memory", () => new MemoryTurnLog()],
];

const TTL_S = 60;
const id = () => randomSuffix();

function recordFor(userId: string, requestId = `req-${id()}`, chatId = crypto.randomUUID()): TurnRecord {
  return { userId, requestId, chatId, instanceId: `inst-${id()}`, startedAt: Date.now() };
}

const refOf = ({ userId, requestId }: TurnRecord): TurnRef => ({ userId, requestId });
const done = (chatId: string, finishReason = "stop"): TurnEnd => ({
  outcome: "done",
  chat_id: chatId,
  message_id: `m-${id()}`,
  finish_reason: finishReason,
  usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
});
const chunk = (seq: number) => ({ type: "text-delta", id: "t", delta: `d${seq} ` });
const seqsOf = (entries: TurnEntry[]) => entries.map((entry) => (entry.kind === "chunk" ? entry.seq : "end"));
const runningView = async (log: TurnLog, userId: string) =>
  (await log.running(userId))
    .map(({ userId: owner, requestId, chatId, instanceId, lastSeq }) => ({
      userId: owner,
      requestId,
      chatId,
      instanceId,
      lastSeq,
    }))
    .sort((a, b) => a.requestId.localeCompare(b.requestId));

/** Admits, and fails the test at once when the log refuses. */
async function admitted(log: TurnLog, record: TurnRecord, max = 8): Promise<TurnRef> {
  expect(await log.admit(record, max)).toBe("admitted");
  return refOf(record);
}

function appendAll(log: TurnLog, ref: TurnRef, count: number, from = 0): void {
  for (let seq = from; seq < from + count; seq++) log.append(ref, seq, chunk(seq));
}

for (const [name, open] of adapters) {
  describe(`turn log contract: ${name}`, () => {
    test("admits a request id once: a second admission while it runs is a duplicate, over the cap is busy", async () => {
      const log = open();
      const userId = `u-${id()}`;
      const first = recordFor(userId);
      expect(await log.admit(first, 2)).toBe("admitted");
      expect(await log.admit({ ...first, chatId: crypto.randomUUID() }, 2)).toBe("duplicate");
      expect(await log.admit(recordFor(userId), 2)).toBe("admitted");
      expect(await log.admit(recordFor(userId), 2)).toBe("busy");
      // A duplicate is a duplicate even when the user is at the cap.
      expect(await log.admit(first, 2)).toBe("duplicate");
      // The cap is the user's: another user is not held by it.
      expect(await log.admit(recordFor(`u-${id()}`), 2)).toBe("admitted");
      expect(await runningView(log, userId)).toHaveLength(2);
    });

    test("the running-turn cap holds under concurrent admissions (300 rounds of 20 against a cap of 8)", async () => {
      const log = open();
      const userId = `u-${id()}`;
      const counts: number[] = [];
      for (let round = 0; round < 300; round++) {
        const records = Array.from({ length: 20 }, () => recordFor(userId));
        const verdicts = await Promise.all(records.map((record) => log.admit(record, 8)));
        counts.push(verdicts.filter((verdict) => verdict === "admitted").length);
        expect(verdicts.filter((verdict) => verdict === "busy")).toHaveLength(20 - counts.at(-1)!);
        if (counts.at(-1) !== 8) break;
        expect(await log.running(userId)).toHaveLength(8);
        await Promise.all(
          records.filter((_, i) => verdicts[i] === "admitted").map((record) => log.release(refOf(record))),
        );
        if ((await log.running(userId)).length !== 0) break;
      }
      expect(counts).toEqual(Array(300).fill(8));
      expect(await log.running(userId)).toEqual([]);
    }, 30_000);

    test("concurrent admissions of one request id admit it once", async () => {
      const log = open();
      const userId = `u-${id()}`;
      const outcomes: string[] = [];
      for (let round = 0; round < 100; round++) {
        const record = recordFor(userId);
        const verdicts = await Promise.all(Array.from({ length: 10 }, () => log.admit(record, 8)));
        outcomes.push(verdicts.toSorted().join(","));
        await log.release(refOf(record));
      }
      expect(new Set(outcomes)).toEqual(new Set([["admitted", ...Array(9).fill("duplicate")].join(",")]));
    }, 20_000);

    test("appended chunks read back in order after any seq; the end entry comes last", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      expect(await log.read(ref, -1)).toEqual({ record: expect.objectContaining(record), entries: [] });
      appendAll(log, ref, 10);
      const all = await log.read(ref, -1);
      expect(all?.record).toMatchObject(record);
      expect(all?.entries).toEqual(Array.from({ length: 10 }, (_, seq) => ({ kind: "chunk", seq, chunk: chunk(seq) })));
      expect(seqsOf((await log.read(ref, 4))!.entries)).toEqual([5, 6, 7, 8, 9]);
      expect(seqsOf((await log.read(ref, 9))!.entries)).toEqual([]);
      expect(seqsOf((await log.read(ref, 5000))!.entries)).toEqual([]);
      // Not awaited, as the generator appends: the end written right after still comes after them.
      appendAll(log, ref, 5, 10);
      const end = done(record.chatId);
      expect(await log.claim(ref, TTL_S)).toBe(true);
      await log.end(ref, end, TTL_S);
      const ended = (await log.read(ref, -1))!.entries;
      expect(seqsOf(ended)).toEqual([...Array.from({ length: 15 }, (_, i) => i), "end"]);
      expect(ended.at(-1)).toEqual({ kind: "end", end });
      // After a middle seq, and beyond the last chunk: the end is still there to tell the follower.
      expect(seqsOf((await log.read(ref, 12))!.entries)).toEqual([13, 14, "end"]);
      expect((await log.read(ref, 14))!.entries).toEqual([{ kind: "end", end }]);
      expect((await log.read(ref, 1_000_000))!.entries).toEqual([{ kind: "end", end }]);
    });

    test("a long turn reads back whole across pages (1000 chunks running, 1203 ended)", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      appendAll(log, ref, 1000);
      const full = (await log.read(ref, -1))!.entries;
      expect(seqsOf(full)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(full[999]).toEqual({ kind: "chunk", seq: 999, chunk: chunk(999) });
      expect(seqsOf((await log.read(ref, 499))!.entries)).toEqual(Array.from({ length: 500 }, (_, i) => 500 + i));
      appendAll(log, ref, 203, 1000);
      expect(await log.claim(ref, TTL_S)).toBe(true);
      await log.end(ref, done(record.chatId), TTL_S);
      expect(seqsOf((await log.read(ref, -1))!.entries)).toEqual([...Array.from({ length: 1203 }, (_, i) => i), "end"]);
      expect(seqsOf((await log.read(ref, 700))!.entries)).toEqual([
        ...Array.from({ length: 502 }, (_, i) => 701 + i),
        "end",
      ]);
      expect(await runningView(log, record.userId)).toEqual([]);
    });

    test("claim is true for exactly one of many concurrent callers", async () => {
      const log = open();
      const userId = `u-${id()}`;
      const winners: number[] = [];
      for (let round = 0; round < 300; round++) {
        const record = recordFor(userId);
        const ref = await admitted(log, record);
        const claims = await Promise.all(Array.from({ length: 12 }, () => log.claim(ref, TTL_S)));
        winners.push(claims.filter(Boolean).length);
        await log.end(ref, done(record.chatId), TTL_S);
        expect(await log.claim(ref, TTL_S)).toBe(false);
      }
      expect(winners).toEqual(Array(300).fill(1));
    }, 30_000);

    test("end publishes the end to subscribers, frees the running place and keeps latest()", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record, 1);
      const seen: TurnEntry[] = [];
      const unsubscribe = await log.subscribe(ref, (entry) => seen.push(entry));
      appendAll(log, ref, 3);
      expect(await runningView(log, record.userId)).toEqual([
        {
          userId: record.userId,
          requestId: record.requestId,
          chatId: record.chatId,
          instanceId: record.instanceId,
          lastSeq: 2,
        },
      ]);
      expect(await log.latest(record.userId, record.chatId)).toBe(record.requestId);
      // At its cap of one, the user can start nothing else until the turn ends.
      expect(await log.admit(recordFor(record.userId), 1)).toBe("busy");
      const end = done(record.chatId);
      expect(await log.claim(ref, TTL_S)).toBe(true);
      await log.end(ref, end, TTL_S);
      const live = await eventually(
        () => seen,
        (entries) => entries.some((entry) => entry.kind === "end"),
        3000,
        5,
      );
      expect(live).toEqual([
        { kind: "chunk", seq: 0, chunk: chunk(0) },
        { kind: "chunk", seq: 1, chunk: chunk(1) },
        { kind: "chunk", seq: 2, chunk: chunk(2) },
        { kind: "end", end },
      ]);
      expect(await runningView(log, record.userId)).toEqual([]);
      expect(await log.latest(record.userId, record.chatId)).toBe(record.requestId);
      expect(await log.admit(recordFor(record.userId), 1)).toBe("admitted");
      await unsubscribe();
    });

    test("subscribers get the appended chunks in order, live; after unsubscribing nothing more", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      const first: number[] = [];
      const second: number[] = [];
      const stopFirst = await log.subscribe(ref, (entry) => first.push(entry.kind === "chunk" ? entry.seq : -99));
      await log.subscribe(ref, (entry) => second.push(entry.kind === "chunk" ? entry.seq : -99));
      for (let seq = 0; seq < 200; seq++) {
        log.append(ref, seq, chunk(seq));
        if (seq % 50 === 49) await Bun.sleep(1);
      }
      const expected = Array.from({ length: 200 }, (_, i) => i);
      expect(
        await eventually(
          () => first,
          (seqs) => seqs.length >= 200,
          3000,
          5,
        ),
      ).toEqual(expected);
      expect(
        await eventually(
          () => second,
          (seqs) => seqs.length >= 200,
          3000,
          5,
        ),
      ).toEqual(expected);
      await stopFirst();
      log.append(ref, 200, chunk(200));
      await eventually(
        () => second,
        (seqs) => seqs.length === 201,
        3000,
        5,
      );
      expect(second.at(-1)).toBe(200);
      expect(first).toHaveLength(200);
    });

    test("running() lists the user's turns with the last seq each has logged", async () => {
      const log = open();
      const userId = `u-${id()}`;
      const quiet = recordFor(userId);
      const busy = recordFor(userId);
      const other = recordFor(`u-${id()}`);
      for (const record of [quiet, busy, other]) await admitted(log, record);
      appendAll(log, refOf(busy), 42);
      appendAll(log, refOf(other), 3);
      const view = (record: TurnRecord, lastSeq: number) => ({
        userId: record.userId,
        requestId: record.requestId,
        chatId: record.chatId,
        instanceId: record.instanceId,
        lastSeq,
      });
      expect(await runningView(log, userId)).toEqual(
        [view(quiet, -1), view(busy, 41)].sort((a, b) => a.requestId.localeCompare(b.requestId)),
      );
      expect(await runningView(log, `u-${id()}`)).toEqual([]);
    });

    test("a request id used again after its turn ended starts an empty log of its own", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      await log.describe(ref, JSON.stringify({ what: "the first turn's message" }));
      appendAll(log, ref, 4);
      expect(await log.claim(ref, TTL_S)).toBe(true);
      await log.end(ref, done(record.chatId), TTL_S);
      expect((await log.read(ref, -1))?.record.facts).toBe(JSON.stringify({ what: "the first turn's message" }));

      const again: TurnRecord = {
        userId: record.userId,
        requestId: record.requestId,
        chatId: crypto.randomUUID(),
        instanceId: `inst-${id()}`,
        startedAt: Date.now() + 1,
      };
      await admitted(log, again);
      const read = await log.read(ref, -1);
      expect(read?.entries).toEqual([]);
      // The record is the new turn's: nothing of the first one (its stored message's facts) is left.
      expect(read?.record).toMatchObject({ chatId: again.chatId, instanceId: again.instanceId });
      expect(read?.record.facts).toBeUndefined();
      expect(await log.latest(record.userId, again.chatId)).toBe(record.requestId);
      // Its end is claimable again, once.
      expect(await log.claim(ref, TTL_S)).toBe(true);
      expect(await log.claim(ref, TTL_S)).toBe(false);
    });

    test("describe() keeps the turn's facts for whoever reads the record", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      expect((await log.read(ref, -1))?.record.facts).toBeUndefined();
      await log.describe(ref, '{"stored":{"n":1}}');
      expect((await log.read(ref, -1))?.record).toMatchObject({ ...record, facts: '{"stored":{"n":1}}' });
    });

    test("another user's ref never reads, lists or follows the turn", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      appendAll(log, ref, 3);
      const stranger = { userId: `u-${id()}`, requestId: record.requestId };
      expect(await log.read(stranger, -1)).toBeUndefined();
      expect(await log.running(stranger.userId)).toEqual([]);
      expect(await log.latest(stranger.userId, record.chatId)).toBeUndefined();
      const seen: TurnEntry[] = [];
      await log.subscribe(stranger, (entry) => seen.push(entry));
      appendAll(log, ref, 2, 3);
      expect(await log.claim(ref, TTL_S)).toBe(true);
      await log.end(ref, done(record.chatId), TTL_S);
      // The stranger's own request id of the same name is a turn of its own.
      expect(await log.admit({ ...recordFor(stranger.userId), requestId: record.requestId }, 8)).toBe("admitted");
      expect((await log.read(stranger, -1))?.entries).toEqual([]);
      expect((await log.read(ref, -1))?.entries).toHaveLength(6);
      await Bun.sleep(50);
      expect(seen).toEqual([]);
    });

    test("release gives the place back and drops the turn's log", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record, 1);
      appendAll(log, ref, 2);
      await log.release(ref);
      expect(await log.read(ref, -1)).toBeUndefined();
      expect(await log.running(record.userId)).toEqual([]);
      // The conversation has no turn kept to resume any more.
      expect(await log.latest(record.userId, record.chatId)).toBeUndefined();
      expect(await log.admit(recordFor(record.userId), 1)).toBe("admitted");
    });

    test("a turn ended with a TTL of 1 s can no longer be read after it", async () => {
      const log = open();
      const record = recordFor(`u-${id()}`);
      const ref = await admitted(log, record);
      appendAll(log, ref, 3);
      expect(await log.claim(ref, 1)).toBe(true);
      await log.end(ref, done(record.chatId), 1);
      expect(seqsOf((await log.read(ref, -1))!.entries)).toEqual([0, 1, 2, "end"]);
      await Bun.sleep(1500);
      expect(await log.read(ref, -1)).toBeUndefined();
      expect(await log.read(ref, 1)).toBeUndefined();
      expect(await log.latest(record.userId, record.chatId)).toBeUndefined();
      expect(await log.running(record.userId)).toEqual([]);
    });
  });
}

describe("turn log: Redis only", () => {
  const log = new RedisTurnLog(redis, bus, keys, (error) => appendFailures.push(error));

  test("an instance whose lease expired is an orphan with its turns; a live one is not", async () => {
    const dead = `inst-dead-${id()}`;
    const live = `inst-live-${id()}`;
    const self = `inst-self-${id()}`;
    await log.renewLease(dead, 300);
    await log.renewLease(live, 60_000);
    await log.renewLease(self, 300);
    const a = await admitted(log, { ...recordFor(`u-${id()}`), instanceId: dead });
    const b = await admitted(log, { ...recordFor(`u-${id()}`), instanceId: dead });
    const ended = { ...recordFor(`u-${id()}`), instanceId: dead };
    await admitted(log, ended);
    expect(await log.claim(refOf(ended), TTL_S)).toBe(true);
    await log.end(refOf(ended), done(ended.chatId), TTL_S);
    await admitted(log, { ...recordFor(`u-${id()}`), instanceId: live });
    expect(await log.alive(dead)).toBe(true);
    expect((await log.orphans(self)).map((orphan) => orphan.instanceId)).not.toContain(dead);

    await Bun.sleep(450);
    expect(await log.alive(dead)).toBe(false);
    expect(await log.alive(live)).toBe(true);
    const orphans = await log.orphans(self);
    // Not itself, even though its own lease lapsed too; not the live one; the ended turn is not listed.
    expect(orphans.map((orphan) => orphan.instanceId)).toEqual([dead]);
    const sortRefs = (refs: TurnRef[]) => refs.toSorted((x, y) => x.userId.localeCompare(y.userId));
    expect(sortRefs(orphans[0]!.turns)).toEqual(sortRefs([a, b]));

    await log.forgetInstance(dead, orphans[0]!.turns);
    expect((await log.orphans(self)).map((orphan) => orphan.instanceId)).toEqual([]);
    expect(await redis.exists(keys.chatInstanceTurns(dead))).toBe(0);
    // The turns themselves are still there to be ended as interrupted.
    expect(await log.read(a, -1)).toBeDefined();
  });

  test("a turn admitted between a sweep's listing and its forgetting is found by the next sweep", async () => {
    const self = `self-${id()}`;
    const lapsed = `lapsed-${id()}`;
    await log.renewLease(lapsed, 200);
    const first = await admitted(log, { ...recordFor(`u-${id()}`), instanceId: lapsed });
    await Bun.sleep(300);
    const orphan = (await log.orphans(self)).find((next) => next.instanceId === lapsed);
    expect(orphan?.turns).toEqual([first]);
    // The instance lives on (its lease lapsed under load) and starts another turn meanwhile.
    const second = await admitted(log, { ...recordFor(`u-${id()}`), instanceId: lapsed });
    await log.forgetInstance(lapsed, orphan!.turns);
    await log.renewLease(lapsed, 200);
    await Bun.sleep(300);
    expect((await log.orphans(self)).find((next) => next.instanceId === lapsed)?.turns).toEqual([second]);
  });

  test("renewing keeps an instance alive past its first lease; dropping the lease ends it", async () => {
    const instance = `inst-${id()}`;
    await log.renewLease(instance, 300);
    for (let i = 0; i < 5; i++) {
      await Bun.sleep(120);
      await log.renewLease(instance, 300);
    }
    expect(await log.alive(instance)).toBe(true);
    await log.dropLease(instance);
    expect(await log.alive(instance)).toBe(false);
    // No turns of its own: a clean shutdown leaves nothing to sweep.
    expect((await log.orphans(`inst-${id()}`)).map((orphan) => orphan.instanceId)).not.toContain(instance);
  });

  test("a stop request reaches the instance it names, and only that one", async () => {
    const target = `inst-${id()}`;
    const bystander = `inst-${id()}`;
    const got: Array<[string, TurnRef]> = [];
    const stopTarget = await log.onStop(target, (ref) => got.push([target, ref]));
    await log.onStop(bystander, (ref) => got.push([bystander, ref]));
    const ref = { userId: `u-${id()}`, requestId: `req with "quotes" ${id()}` };
    await log.requestStop(target, ref);
    expect(
      await eventually(
        () => got,
        (seen) => seen.length > 0,
        3000,
        5,
      ),
    ).toEqual([[target, ref]]);
    await Bun.sleep(50);
    expect(got).toHaveLength(1);
    await stopTarget();
    await log.requestStop(target, ref);
    await Bun.sleep(50);
    expect(got).toHaveLength(1);
  });

  test("every key of one turn is in one Cluster slot; the running hash, in the user's", async () => {
    expect(keySlot("123456789")).toBe(0x31c3); // CRC16-XMODEM's check value, under 16384
    if (TEST_REDIS_TOPOLOGY.kind === "cluster") {
      for (const key of ["foo", "{user1000}.following", keys.chatTurnsRunning("u1")]) {
        expect(await redis.call("CLUSTER", "KEYSLOT", key)).toBe(keySlot(key));
      }
    }
    expect(keySlot("foo")).toBe(12182);
    expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"));
    const userId = `u-${id()}`;
    const record = { ...recordFor(userId, `req:{odd}:${id()}`), instanceId: `inst-${id()}` };
    const ref = await admitted(log, record);
    await log.describe(ref, "{}");
    appendAll(log, ref, 3);
    expect(await log.claim(ref, TTL_S)).toBe(true);
    const written = await scanTestKeys(`${prefix}:chat:turn:*${userId}*`);
    // Its log, its metadata and its end marker, all written under the turn's hash tag.
    expect(written).toHaveLength(3);
    expect(new Set(written.map(hashTag)).size).toBe(1);
    expect(new Set(written.map(keySlot)).size).toBe(1);
    const [tag] = written.map(hashTag);
    expect(tag?.startsWith(`${userId}:`)).toBe(true);
    // The raw request id never reaches a key.
    expect(written.some((key) => key.includes("odd"))).toBe(false);
    const turnDigest = tag!.slice(userId.length + 1);
    expect(keySlot(keys.chatTurnLive(userId, turnDigest))).toBe(keySlot(written[0]!));
    // The user's running hash and latest-turn pointer share the user's slot, so the Lua admission runs on one key.
    expect(keySlot(keys.chatLatestTurn(userId, record.chatId))).toBe(keySlot(keys.chatTurnsRunning(userId)));
    await log.end(ref, done(record.chatId), TTL_S);
  });

  test("once its TTL has passed, nothing of an ended turn is left in Redis", async () => {
    const userId = `u-${id()}`;
    const instanceId = `inst-${id()}`;
    const record = { ...recordFor(userId), instanceId };
    const ref = await admitted(log, record);
    await log.describe(ref, "{}");
    appendAll(log, ref, 20);
    expect(await log.claim(ref, 1)).toBe(true);
    await log.end(ref, done(record.chatId), 1);
    expect(await scanTestKeys(`${prefix}:*${userId}*`)).not.toEqual([]);
    await Bun.sleep(1500);
    expect(await scanTestKeys(`${prefix}:*${userId}*`)).toEqual([]);
    expect(await redis.exists(keys.chatInstanceTurns(instanceId))).toBe(0);
  });

  test("a released turn leaves nothing behind", async () => {
    const userId = `u-${id()}`;
    const instanceId = `inst-${id()}`;
    const ref = await admitted(log, { ...recordFor(userId), instanceId });
    appendAll(log, ref, 2);
    await log.release(ref);
    expect(await scanTestKeys(`${prefix}:*${userId}*`)).toEqual([]);
    expect(await redis.exists(keys.chatInstanceTurns(instanceId))).toBe(0);
  });

  test("appends reached Redis without a failure report", () => {
    expect(appendFailures).toEqual([]);
  });
});
