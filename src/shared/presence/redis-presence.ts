import type { Redis } from "ioredis";
import type { Keys } from "../keys";
import type { Admission, Dispatch, Lease, Presence } from "./presence";

/*
 * One hash per user: field = connection id, value = "<expires at ms>|<lease JSON>". Expiry is read
 * against the Redis clock inside the scripts, so instances never compare their own clocks. A lease
 * also needs its instance's liveness key, so a crashed instance's devices vanish as soon as that
 * short key expires. Removal is HDEL on the connection's own field: a compare-and-delete by
 * construction, which can never touch a newer connection of the same device.
 *
 * Beside it, the user's device slots: field = device id, value = "<expires at ms>|{c, i, at}" of the
 * device's most recent connection. Admission reads one slot and the slot count (HGET, HLEN), so its
 * cost does not grow with the user's devices; the slots are scanned only when the cap is reached,
 * to forget expired ones, and there are never more than about the cap of them.
 */
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

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

// As PUT, plus ARGV: max devices, liveness prefix. Returns {1, replaced connection?, its instance?},
// {0} at the cap, {2} when a newer connection holds the device's slot.
const ADMIT = `${NOW}${SLOTS}
local ttl, at, max = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local held = slot(KEYS[2], ARGV[4])
if held and held.c ~= ARGV[1] and redis.call('EXISTS', ARGV[8] .. held.i) == 0 then held = nil end
if held and held.c ~= ARGV[1] and older(at, ARGV[1], held.at, held.c) then return {2} end
if not held and redis.call('HLEN', KEYS[2]) >= max then
  local entries = redis.call('HGETALL', KEYS[2])
  for i = 1, #entries, 2 do
    local value = entries[i + 1]
    if expired(value) or redis.call('EXISTS', ARGV[8] .. cjson.decode(after_bar(value)).i) == 0 then
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
local function live(key, alive_prefix)
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
      if redis.call('EXISTS', alive_prefix .. lease.i) == 1 then out[#out + 1] = {entries[i], lease, json} end
    end
  end
  return out
end`;

// KEYS[1] user hash; ARGV: liveness key prefix
const LIST = `${LIVE}
local out = {}
for _, entry in ipairs(live(KEYS[1], ARGV[1])) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[3]
end
return out`;

// KEYS[1] user hash; ARGV: device id ('' = any), asking instance, inbox prefix, liveness prefix, message
const DISPATCH = `${LIVE}
local best, bestConn, bestAt = nil, nil, -1
for _, entry in ipairs(live(KEYS[1], ARGV[4])) do
  local lease = entry[2]
  if (ARGV[1] == '' or lease.d == ARGV[1]) and lease.at > bestAt then
    best, bestConn, bestAt = lease, entry[1], lease.at
  end
end
if not best then return {0} end
if best.i == ARGV[2] then return {1, bestConn, best.i} end
local message = '{"c":' .. cjson.encode(bestConn) .. ',' .. string.sub(ARGV[5], 2)
local receivers = redis.call('PUBLISH', ARGV[3] .. best.i, message)
if receivers > 0 then return {2, bestConn, best.i} end
return {3, bestConn, best.i}`;

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
  presenceAdmit(...args: [...PutArgs, maxDevices: number, alivePrefix: string]): Promise<[number, string?, string?]>;
  presenceRemove(leases: string, slots: string, connectionId: string): Promise<number>;
  presenceList(key: string, alivePrefix: string): Promise<string[]>;
  presenceDispatch(
    key: string,
    deviceId: string,
    from: string,
    inboxPrefix: string,
    alivePrefix: string,
    message: string,
  ): Promise<[number, string?, string?]>;
};

const STATUS: Dispatch["status"][] = ["offline", "local", "sent", "unreachable"];

export class RedisPresence implements Presence {
  private readonly redis: PresenceRedis;
  private readonly alivePrefix: string;
  private readonly inboxPrefix: string;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL after a Redis restart forgets the scripts.
    if (!("presenceDispatch" in redis)) {
      redis.defineCommand("presencePut", { numberOfKeys: 2, lua: PUT });
      redis.defineCommand("presenceAdmit", { numberOfKeys: 2, lua: ADMIT });
      redis.defineCommand("presenceRemove", { numberOfKeys: 2, lua: REMOVE });
      redis.defineCommand("presenceList", { numberOfKeys: 1, lua: LIST });
      redis.defineCommand("presenceDispatch", { numberOfKeys: 1, lua: DISPATCH });
    }
    this.redis = redis as PresenceRedis;
    this.alivePrefix = keys.instanceAlive("");
    this.inboxPrefix = keys.instanceInbox("");
  }

  async admit(lease: Lease, ttlMs: number, maxDevices: number): Promise<Admission> {
    const [code, connectionId, instanceId] = await this.redis.presenceAdmit(
      ...this.putArgs(lease, ttlMs),
      maxDevices,
      this.alivePrefix,
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
    const flat = await this.redis.presenceList(this.keys.presence(userId), this.alivePrefix);
    const leases: Lease[] = [];
    for (let i = 0; i < flat.length; i += 2) leases.push(decode(userId, flat[i]!, flat[i + 1]!));
    return leases.sort((a, b) => b.connectedAt - a.connectedAt);
  }

  async dispatch(userId: string, deviceId: string | undefined, fromInstance: string, message: string) {
    const [code, connectionId, instanceId] = await this.redis.presenceDispatch(
      this.keys.presence(userId),
      deviceId ?? "",
      fromInstance,
      this.inboxPrefix,
      this.alivePrefix,
      message,
    );
    const status = STATUS[code] ?? "offline";
    if (status === "offline" || !connectionId || !instanceId) return { status: "offline" } as Dispatch;
    return { status, connectionId, instanceId } as Dispatch;
  }

  async markInstance(instanceId: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.keys.instanceAlive(instanceId), "1", "PX", ttlMs);
  }

  async dropInstance(instanceId: string): Promise<void> {
    await this.redis.del(this.keys.instanceAlive(instanceId));
  }

  async instancesAlive(instanceIds: string[]): Promise<boolean[]> {
    if (instanceIds.length === 0) return [];
    const values = await this.redis.mget(...instanceIds.map((id) => this.keys.instanceAlive(id)));
    return values.map((value) => value !== null);
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

/** The user's device slots live next to the user's leases, named after them. */
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
