import type { Bus } from "../bus/bus";
import type { Keys } from "../keys";
import { isCluster, type Redis } from "../redis";
import { type Admission, type Dispatch, type Lease, type Presence, withConnection } from "./presence";

/*
 * One hash per user: field = connection id, value = "<expires at ms>|<lease JSON>". Expiry is read
 * against the Redis clock inside the scripts, so instances never compare their own clocks. A lease
 * also needs its instance to be alive, so a crashed instance's devices vanish as soon as its short
 * liveness mark lapses. Removal is HDEL on the connection's own field: a compare-and-delete by
 * construction, which can never touch a newer connection of the same device.
 *
 * Beside it, the user's device slots: field = device id, value = "<expires at ms>|{c, i, at}" of the
 * device's most recent connection. Admission reads one slot and the slot count (HGET, HLEN), so its
 * cost does not grow with the user's devices; the slots are scanned only when the cap is reached,
 * to forget expired ones, and there are never more than about the cap of them.
 *
 * Both hashes share the user's hash tag; the instances' liveness marks are one sorted set of their
 * own (instance -> mark expiry). A script touches only the keys it is given, which on a Redis
 * Cluster must sit in one slot, so the live instances are read first and passed to the user's
 * script as arguments, and a call for another instance is published by the caller (SPUBLISH to the
 * owner's inbox on a Cluster) rather than from inside the script.
 */
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** `alive` from the live instance ids passed as the arguments from `first` on. */
const LIVE_SET = (first: number) => `
local alive_set = {}
for i = ${first}, #ARGV do alive_set[ARGV[i]] = true end
local function alive(instance) return alive_set[instance] == true end
`;

const SLOTS = `
local function older(at1, c1, at2, c2) return at1 < at2 or (at1 == at2 and c1 < c2) end
local function after_bar(value) return string.sub(value, string.find(value, '|', 1, true) + 1) end
local function expired(value) return tonumber(string.sub(value, 1, string.find(value, '|', 1, true) - 1)) <= now end
local function slot(key, device)
  local value = redis.call('HGET', key, device)
  if not value or expired(value) then return nil end
  return cjson.decode(after_bar(value))
end
local function write(key, field, ttl, value)
  redis.call('HSET', key, field, (now + ttl) .. '|' .. value)
  redis.call('PEXPIRE', key, ttl * 2)
end`;

// KEYS: user hash, slot hash; ARGV: connection id, lease JSON, ttl ms, device id, instance id, connected at
const PUT = `${NOW}${SLOTS}
local ttl, at = tonumber(ARGV[3]), tonumber(ARGV[6])
write(KEYS[1], ARGV[1], ttl, ARGV[2])
local held = slot(KEYS[2], ARGV[4])
if not held or held.c == ARGV[1] or older(held.at, held.c, at, ARGV[1]) then
  write(KEYS[2], ARGV[4], ttl, cjson.encode({c = ARGV[1], i = ARGV[5], at = at}))
end
return 1`;

// As PUT, plus ARGV: max devices, then the live instance ids. Returns {1, replaced connection?, its
// instance?}, {0} at the cap, {2} when a newer connection holds the device's slot.
const ADMIT = `${NOW}${SLOTS}${LIVE_SET(8)}
local ttl, at, max = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local held = slot(KEYS[2], ARGV[4])
if held and held.c ~= ARGV[1] and not alive(held.i) then held = nil end
if held and held.c ~= ARGV[1] and older(at, ARGV[1], held.at, held.c) then return {2} end
if not held and redis.call('HLEN', KEYS[2]) >= max then
  local entries = redis.call('HGETALL', KEYS[2])
  for i = 1, #entries, 2 do
    local value = entries[i + 1]
    if expired(value) or not alive(cjson.decode(after_bar(value)).i) then
      redis.call('HDEL', KEYS[2], entries[i])
    end
  end
  if redis.call('HLEN', KEYS[2]) >= max then return {0} end
end
write(KEYS[1], ARGV[1], ttl, ARGV[2])
write(KEYS[2], ARGV[4], ttl, cjson.encode({c = ARGV[1], i = ARGV[5], at = at}))
if held and held.c ~= ARGV[1] then return {1, held.c, held.i} end
return {1}`;

// KEYS: user hash, slot hash; ARGV: connection id. The slot goes only if this connection holds it.
const REMOVE = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local sep = string.find(value, '|', 1, true)
local device = cjson.decode(string.sub(value, sep + 1)).d
local held = redis.call('HGET', KEYS[2], device)
if held and cjson.decode(string.sub(held, string.find(held, '|', 1, true) + 1)).c == ARGV[1] then
  redis.call('HDEL', KEYS[2], device)
end
return 1`;

// Every live lease of a user as {connection id, decoded lease, lease JSON}; expired ones are deleted on the way.
const LIVE = `${NOW}
local function live(key)
  local entries = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #entries, 2 do
    local value = entries[i + 1]
    local sep = string.find(value, '|', 1, true)
    if tonumber(string.sub(value, 1, sep - 1)) <= now then
      redis.call('HDEL', key, entries[i])
    else
      local json = string.sub(value, sep + 1)
      local lease = cjson.decode(json)
      if alive(lease.i) then out[#out + 1] = {entries[i], lease, json} end
    end
  end
  return out
end`;

// KEYS[1] user hash; ARGV: the live instance ids
const LIST = `${LIVE_SET(1)}${LIVE}
local out = {}
for _, entry in ipairs(live(KEYS[1])) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[3]
end
return out`;

// KEYS[1] user hash; ARGV: device id ('' = any), asking instance, then the live instance ids.
// Returns {0} offline, {1, connection, instance} on the asking instance, {2, …} on another one.
const PICK = `${LIVE_SET(3)}${LIVE}
local best, bestConn, bestAt = nil, nil, -1
for _, entry in ipairs(live(KEYS[1])) do
  local lease = entry[2]
  if (ARGV[1] == '' or lease.d == ARGV[1]) and lease.at > bestAt then
    best, bestConn, bestAt = lease, entry[1], lease.at
  end
end
if not best then return {0} end
if best.i == ARGV[2] then return {1, bestConn, best.i} end
return {2, bestConn, best.i}`;

// KEYS[1] the live-instance set; ARGV: instance id, mark ttl ms. Lapsed marks are dropped on the way.
const MARK = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return 1`;

// KEYS[1] the live-instance set. Returns the instances whose mark has not lapsed.
const ALIVE = `${NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')`;

interface LeaseJson {
  d: string;
  n?: string;
  i: string;
  t: string[];
  at: number;
}

type PutArgs = [
  leases: string,
  slots: string,
  connectionId: string,
  lease: string,
  ttlMs: number,
  deviceId: string,
  instanceId: string,
  connectedAt: number,
];

type PresenceRedis = Redis & {
  presencePut(...args: PutArgs): Promise<number>;
  presenceAdmit(...args: [...PutArgs, maxDevices: number, ...alive: string[]]): Promise<[number, string?, string?]>;
  presenceRemove(leases: string, slots: string, connectionId: string): Promise<number>;
  presenceList(key: string, ...alive: string[]): Promise<string[]>;
  presencePick(key: string, deviceId: string, from: string, ...alive: string[]): Promise<[number, string?, string?]>;
  presenceMark(key: string, instanceId: string, ttlMs: number): Promise<number>;
  presenceAlive(key: string): Promise<string[]>;
};

/** Where a call for another instance is handed over: the device RPC's lane (its inbox channels). */
export type InboxPublisher = Pick<Bus, "publish">;

export class RedisPresence implements Presence {
  private readonly redis: PresenceRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly inboxes: InboxPublisher,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart forgets the scripts.
    if (!("presencePick" in redis)) {
      redis.defineCommand("presencePut", { numberOfKeys: 2, lua: PUT });
      redis.defineCommand("presenceAdmit", { numberOfKeys: 2, lua: ADMIT });
      redis.defineCommand("presenceRemove", { numberOfKeys: 2, lua: REMOVE });
      redis.defineCommand("presenceList", { numberOfKeys: 1, lua: LIST });
      redis.defineCommand("presencePick", { numberOfKeys: 1, lua: PICK });
      redis.defineCommand("presenceMark", { numberOfKeys: 1, lua: MARK });
      redis.defineCommand("presenceAlive", { numberOfKeys: 1, lua: ALIVE });
    }
    this.redis = redis as PresenceRedis;
  }

  async admit(lease: Lease, ttlMs: number, maxDevices: number): Promise<Admission> {
    const [code, connectionId, instanceId] = await this.redis.presenceAdmit(
      ...this.putArgs(lease, ttlMs),
      maxDevices,
      ...(await this.liveInstances()),
    );
    if (code === 0) return { status: "full" };
    if (code === 2) return { status: "superseded" };
    return connectionId && instanceId
      ? { status: "admitted", replaced: { connectionId, instanceId } }
      : { status: "admitted" };
  }

  async put(lease: Lease, ttlMs: number): Promise<void> {
    await this.redis.presencePut(...this.putArgs(lease, ttlMs));
  }

  async refresh(leases: Lease[], ttlMs: number): Promise<void> {
    if (leases.length === 0) return;
    if (isCluster(this.redis)) {
      // Users hash to different slots, which one pipeline cannot span: one command each, all
      // sent at once (a heartbeat's leases, every few seconds).
      await Promise.all(leases.map((lease) => this.redis.presencePut(...this.putArgs(lease, ttlMs))));
      return;
    }
    const pipeline = this.redis.pipeline() as unknown as PresenceRedis & { exec(): Promise<unknown> };
    for (const lease of leases) pipeline.presencePut(...this.putArgs(lease, ttlMs));
    const results = (await pipeline.exec()) as Array<[Error | null, unknown]> | null;
    const failed = results?.find(([error]) => error);
    if (failed?.[0]) throw failed[0];
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    return (
      (await this.redis.presenceRemove(this.keys.presence(userId), this.keys.presenceSlots(userId), connectionId)) > 0
    );
  }

  async list(userId: string): Promise<Lease[]> {
    const flat = await this.redis.presenceList(this.keys.presence(userId), ...(await this.liveInstances()));
    const leases: Lease[] = [];
    for (let i = 0; i < flat.length; i += 2) leases.push(decode(userId, flat[i]!, flat[i + 1]!));
    return leases.sort((a, b) => b.connectedAt - a.connectedAt);
  }

  async dispatch(userId: string, deviceId: string | undefined, fromInstance: string, message: string) {
    const [code, connectionId, instanceId] = await this.redis.presencePick(
      this.keys.presence(userId),
      deviceId ?? "",
      fromInstance,
      ...(await this.liveInstances()),
    );
    if (code === 0 || !connectionId || !instanceId) return { status: "offline" } as Dispatch;
    if (code === 1) return { status: "local", connectionId, instanceId } as Dispatch;
    const receivers = await this.inboxes.publish(
      this.keys.instanceInbox(instanceId),
      withConnection(message, connectionId),
    );
    return { status: receivers > 0 ? "sent" : "unreachable", connectionId, instanceId } as Dispatch;
  }

  async markInstance(instanceId: string, ttlMs: number): Promise<void> {
    await this.redis.presenceMark(this.keys.liveInstances, instanceId, ttlMs);
  }

  async dropInstance(instanceId: string): Promise<void> {
    await this.redis.zrem(this.keys.liveInstances, instanceId);
  }

  async instancesAlive(instanceIds: string[]): Promise<boolean[]> {
    if (instanceIds.length === 0) return [];
    const alive = new Set(await this.liveInstances());
    return instanceIds.map((id) => alive.has(id));
  }

  /** Read at every decision that needs it (one small command), so a dropped instance counts as gone at once. */
  private liveInstances(): Promise<string[]> {
    return this.redis.presenceAlive(this.keys.liveInstances);
  }

  private putArgs(lease: Lease, ttlMs: number): PutArgs {
    return [
      this.keys.presence(lease.userId),
      this.keys.presenceSlots(lease.userId),
      lease.connectionId,
      encode(lease),
      ttlMs,
      lease.deviceId,
      lease.instanceId,
      lease.connectedAt,
    ];
  }
}

function encode(lease: Lease): string {
  const json: LeaseJson = { d: lease.deviceId, i: lease.instanceId, t: lease.tools, at: lease.connectedAt };
  if (lease.deviceName !== undefined) json.n = lease.deviceName;
  return JSON.stringify(json);
}

function decode(userId: string, connectionId: string, text: string): Lease {
  const json = JSON.parse(text) as LeaseJson;
  const lease: Lease = {
    userId,
    deviceId: json.d,
    connectionId,
    instanceId: json.i,
    tools: json.t,
    connectedAt: json.at,
  };
  if (json.n !== undefined) lease.deviceName = json.n;
  return lease;
}
