import type { Bus } from "../../shared/bus/bus";
import type { Keys } from "../../shared/keys";
import type { Redis } from "../../shared/redis";
import type { Admission, RunningTurn, TurnEnd, TurnEntry, TurnFacts, TurnLog, TurnRecord, TurnRef } from "./turn-log";

/**
 * KEYS[1] the user's running-turn hash. ARGV: turn digest, what runs (JSON), the cap, the hash's
 * safety TTL. One key, so it runs on Redis Cluster; the cap holds under concurrent admissions.
 */
const ADMIT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'duplicate' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'busy' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 'admitted'
`;

type TurnRedis = Redis & {
  chatTurnAdmit(running: string, turn: string, value: string, max: number, ttlMs: number): Promise<Admission>;
};

/** Keys, a running turn and a dead instance's set outlive their turn this long at most. */
const SAFETY_TTL_MS = 24 * 3600 * 1000;
/** Turns whose key names are kept made; past it the cache starts over (a bound, not an eviction policy). */
const KEY_CACHE_SIZE = 10_000;
/** Entries read per XRANGE page. */
const PAGE = 500;

type RawEntry = [id: string, fields: string[]];

/** A turn's chunks are stream entries `0-<seq+1>` (so "after seq N" is an id range); its end is `*`. */
const chunkId = (seq: number) => `0-${seq + 1}`;

/** The request id hashed: keys carry no raw client input, and stay short. */
const turnDigest = (requestId: string) =>
  new Bun.CryptoHasher("sha256").update(requestId).digest("base64url").slice(0, 22);

/** The live channel carries what the log holds, as one JSON line per entry. */
const liveChunk = (seq: number, chunkJson: string) => `{"s":${seq},"c":${chunkJson}}`;
const liveEnd = (end: TurnEnd) => JSON.stringify({ e: end });

function parseLive(message: string): TurnEntry | undefined {
  try {
    const value = JSON.parse(message) as { s?: number; c?: unknown; e?: TurnEnd };
    if (value.e) return { kind: "end", end: value.e };
    if (typeof value.s === "number") return { kind: "chunk", seq: value.s, chunk: value.c };
  } catch {
    // Not ours: ignored.
  }
  return undefined;
}

function parseEntry([id, fields]: RawEntry): TurnEntry | undefined {
  const [name, value] = fields;
  if (value === undefined) return undefined;
  if (name === "c") return { kind: "chunk", seq: Number(id.split("-")[1]) - 1, chunk: JSON.parse(value) };
  if (name === "e") return { kind: "end", end: JSON.parse(value) as TurnEnd };
  return undefined;
}

export class RedisTurnLog implements TurnLog {
  private readonly redis: TurnRedis;

  constructor(
    redis: Redis,
    private readonly bus: Bus,
    private readonly keys: Keys,
    private readonly onAppendFailed: (error: unknown) => void,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart forgets the script.
    if (!("chatTurnAdmit" in redis)) redis.defineCommand("chatTurnAdmit", { numberOfKeys: 1, lua: ADMIT });
    this.redis = redis as TurnRedis;
  }

  /** A running turn's keys are asked for at every chunk: made once, kept while the turn may run. */
  private readonly keyCache = new Map<string, ReturnType<RedisTurnLog["makeTurnKeys"]>>();

  private turnKeys(ref: TurnRef) {
    const cacheKey = `${ref.userId}\n${ref.requestId}`;
    let keys = this.keyCache.get(cacheKey);
    if (!keys) {
      if (this.keyCache.size >= KEY_CACHE_SIZE) this.keyCache.clear();
      keys = this.makeTurnKeys(ref);
      this.keyCache.set(cacheKey, keys);
    }
    return keys;
  }

  private makeTurnKeys({ userId, requestId }: TurnRef) {
    const turn = turnDigest(requestId);
    return {
      turn,
      log: this.keys.chatTurnLog(userId, turn),
      meta: this.keys.chatTurnMeta(userId, turn),
      ended: this.keys.chatTurnEnded(userId, turn),
      live: this.keys.chatTurnLive(userId, turn),
      running: this.keys.chatTurnsRunning(userId),
    };
  }

  private static member = (ref: TurnRef) => JSON.stringify([ref.userId, ref.requestId]);

  async admit(record: TurnRecord, maxRunning: number): Promise<Admission> {
    const keys = this.turnKeys(record);
    const running = JSON.stringify({
      request_id: record.requestId,
      chat_id: record.chatId,
      instance: record.instanceId,
    });
    const admission = await this.redis.chatTurnAdmit(keys.running, keys.turn, running, maxRunning, SAFETY_TTL_MS);
    if (admission !== "admitted") return admission;
    // Every key of the turn shares its slot: one MULTI resets a reused request id's log. The
    // instance's set and the conversation's pointer (other slots: commands of their own, never one
    // pipeline across slots, which Redis Cluster refuses) go out with it, one round trip for all.
    const turnReset = this.redis
      .multi()
      .del(keys.log, keys.ended, keys.meta)
      .hset(keys.meta, {
        request_id: record.requestId,
        user_id: record.userId,
        chat_id: record.chatId,
        instance: record.instanceId,
        started_at: String(record.startedAt),
      })
      .pexpire(keys.meta, SAFETY_TTL_MS)
      .exec();
    const instanceTurns = this.keys.chatInstanceTurns(record.instanceId);
    await Promise.all([
      turnReset,
      this.redis
        .pipeline()
        .sadd(instanceTurns, RedisTurnLog.member(record))
        .pexpire(instanceTurns, SAFETY_TTL_MS)
        .exec(),
      this.redis.set(this.keys.chatLatestTurn(record.userId, record.chatId), record.requestId, "PX", SAFETY_TTL_MS),
    ]);
    return "admitted";
  }

  async describe(ref: TurnRef, facts: TurnFacts): Promise<void> {
    await this.redis.hset(this.turnKeys(ref).meta, "facts", facts);
  }

  append(ref: TurnRef, seq: number, chunk: unknown): void {
    const keys = this.turnKeys(ref);
    const json = JSON.stringify(chunk);
    // Sent back to back on one connection: Redis applies them in this order, and the chunk's
    // publish follows its XADD, so a follower that read the log never misses a published chunk.
    this.redis.xadd(keys.log, chunkId(seq), "c", json).catch(this.onAppendFailed);
    if (seq === 0) this.redis.pexpire(keys.log, SAFETY_TTL_MS).catch(this.onAppendFailed);
    this.bus.publish(keys.live, liveChunk(seq, json)).catch(this.onAppendFailed);
  }

  async claim(ref: TurnRef, ttlS: number): Promise<boolean> {
    return (await this.redis.set(this.turnKeys(ref).ended, "1", "PX", ttlS * 1000, "NX")) === "OK";
  }

  async end(ref: TurnRef, end: TurnEnd, ttlS: number): Promise<void> {
    const keys = this.turnKeys(ref);
    const ttlMs = ttlS * 1000;
    await this.redis
      .multi()
      .xadd(keys.log, "*", "e", JSON.stringify(end))
      .pexpire(keys.log, ttlMs)
      .pexpire(keys.meta, ttlMs)
      .exec();
    await this.bus.publish(keys.live, liveEnd(end));
    await this.forgetRunning(ref, ttlMs);
  }

  private async forgetRunning(ref: TurnRef, ttlMs: number): Promise<void> {
    const keys = this.turnKeys(ref);
    const instanceId = await this.redis.hget(keys.meta, "instance");
    const chatId = await this.redis.hget(keys.meta, "chat_id");
    // The user's keys share a slot; the instance's set is in another (one command each, no pipeline across slots).
    const userKeys = this.redis.pipeline().hdel(keys.running, keys.turn);
    if (chatId) userKeys.pexpire(this.keys.chatLatestTurn(ref.userId, chatId), ttlMs);
    await Promise.all([
      userKeys.exec(),
      instanceId ? this.redis.srem(this.keys.chatInstanceTurns(instanceId), RedisTurnLog.member(ref)) : undefined,
    ]);
  }

  async release(ref: TurnRef): Promise<void> {
    const keys = this.turnKeys(ref);
    const [instanceId, chatId] = await this.redis.hmget(keys.meta, "instance", "chat_id");
    await this.redis.del(keys.log, keys.meta, keys.ended);
    await Promise.all([
      this.redis.hdel(keys.running, keys.turn),
      instanceId ? this.redis.srem(this.keys.chatInstanceTurns(instanceId), RedisTurnLog.member(ref)) : undefined,
    ]);
    if (chatId) {
      // The conversation's latest turn is this one only if no newer turn took the pointer meanwhile.
      const latest = this.keys.chatLatestTurn(ref.userId, chatId);
      if ((await this.redis.get(latest)) === ref.requestId) await this.redis.del(latest);
    }
  }

  async read(ref: TurnRef, afterSeq: number): Promise<{ record: TurnRecord; entries: TurnEntry[] } | undefined> {
    const keys = this.turnKeys(ref);
    const meta = await this.redis.hgetall(keys.meta);
    if (!meta.request_id || meta.user_id !== ref.userId || meta.request_id !== ref.requestId) return undefined;
    const entries: TurnEntry[] = [];
    let start = chunkId(afterSeq + 1);
    for (;;) {
      const page = (await this.redis.xrange(keys.log, start, "+", "COUNT", PAGE)) as RawEntry[];
      for (const raw of page) {
        const entry = parseEntry(raw);
        if (entry) entries.push(entry);
      }
      if (page.length < PAGE) break;
      start = `(${page[page.length - 1]![0]}`;
    }
    return { record: recordOf(meta), entries };
  }

  subscribe(ref: TurnRef, onEntry: (entry: TurnEntry) => void): Promise<() => Promise<void>> {
    return this.bus.subscribe(this.turnKeys(ref).live, (message) => {
      const entry = parseLive(message);
      if (entry) onEntry(entry);
    });
  }

  async running(userId: string): Promise<RunningTurn[]> {
    const all = await this.redis.hgetall(this.keys.chatTurnsRunning(userId));
    const turns = Object.values(all).flatMap((value) => {
      try {
        const { request_id, chat_id, instance } = JSON.parse(value) as Record<string, string>;
        return request_id && chat_id && instance
          ? [{ requestId: request_id, chatId: chat_id, instanceId: instance }]
          : [];
      } catch {
        return [];
      }
    });
    return Promise.all(
      turns.map(async (turn) => {
        const last = (await this.redis.xrevrange(
          this.turnKeys({ userId, requestId: turn.requestId }).log,
          chunkId(Number.MAX_SAFE_INTEGER - 1),
          "-",
          "COUNT",
          1,
        )) as RawEntry[];
        const entry = last[0] ? parseEntry(last[0]) : undefined;
        return { userId, ...turn, lastSeq: entry?.kind === "chunk" ? entry.seq : -1 };
      }),
    );
  }

  async latest(userId: string, chatId: string): Promise<string | undefined> {
    return (await this.redis.get(this.keys.chatLatestTurn(userId, chatId))) ?? undefined;
  }

  async renewLease(instanceId: string, ttlMs: number): Promise<void> {
    await Promise.all([
      this.redis.set(this.keys.chatInstanceLease(instanceId), "1", "PX", ttlMs),
      this.redis.sadd(this.keys.chatGenerators, instanceId),
    ]);
  }

  async dropLease(instanceId: string): Promise<void> {
    await this.redis.del(this.keys.chatInstanceLease(instanceId));
    if ((await this.redis.scard(this.keys.chatInstanceTurns(instanceId))) === 0) {
      await this.redis.srem(this.keys.chatGenerators, instanceId);
    }
  }

  async alive(instanceId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.chatInstanceLease(instanceId))) === 1;
  }

  async orphans(selfId: string): Promise<Array<{ instanceId: string; turns: TurnRef[] }>> {
    const instances = (await this.redis.smembers(this.keys.chatGenerators)).filter((id) => id !== selfId);
    const found: Array<{ instanceId: string; turns: TurnRef[] }> = [];
    for (const instanceId of instances) {
      if (await this.alive(instanceId)) continue;
      const members = await this.redis.smembers(this.keys.chatInstanceTurns(instanceId));
      const turns = members.flatMap((member) => {
        const [userId, requestId] = JSON.parse(member) as [string, string];
        return [{ userId, requestId }];
      });
      found.push({ instanceId, turns });
    }
    return found;
  }

  async forgetInstance(instanceId: string, swept: TurnRef[]): Promise<void> {
    const turns = this.keys.chatInstanceTurns(instanceId);
    // Only the turns the sweep ended: an instance whose lease lapsed under load but lives on may
    // have admitted another since, which a later sweep must still find (its next renewal lists the
    // instance among the generators again).
    if (swept.length > 0) await this.redis.srem(turns, ...swept.map((ref) => RedisTurnLog.member(ref)));
    if ((await this.redis.scard(turns)) === 0) await this.redis.srem(this.keys.chatGenerators, instanceId);
  }

  async requestStop(instanceId: string, ref: TurnRef): Promise<void> {
    await this.bus.publish(this.keys.chatTurnStop(instanceId), RedisTurnLog.member(ref));
  }

  onStop(instanceId: string, handler: (ref: TurnRef) => void): Promise<() => Promise<void>> {
    return this.bus.subscribe(this.keys.chatTurnStop(instanceId), (message) => {
      try {
        const [userId, requestId] = JSON.parse(message) as [string, string];
        if (typeof userId === "string" && typeof requestId === "string") handler({ userId, requestId });
      } catch {
        // Not ours: ignored.
      }
    });
  }
}

function recordOf(meta: Record<string, string>): TurnRecord {
  return {
    requestId: meta.request_id!,
    userId: meta.user_id!,
    chatId: meta.chat_id ?? "",
    instanceId: meta.instance ?? "",
    startedAt: Number(meta.started_at ?? 0),
    facts: meta.facts,
  };
}
