import type { Unsubscribe } from "../bus/bus";
import type { DeviceInfo, DeviceRpc } from "../device-rpc";
import type { Platform } from "../platform";
import { type Lease, presenceFor } from "../presence";
import { type CallOwner, RpcCaller } from "./caller";
import { type CallOutcome, type CallProgress, type InboxMessage, parseInbox } from "./envelope";
import { laneFor } from "./lane";
import { rpcMetrics } from "./metrics";

export interface RpcNodeOptions {
  /** Present on chat instances, which hold sockets; absent on pure callers (the agent service). */
  owner?: CallOwner;
  /** The inbox id of a caller without sockets (default: a fresh one). */
  callerId?: string;
  /** How long a found owner is reused (default: half the instance liveness TTL, at most 1 s). */
  routeTtlMs?: number;
}

/** A distinct id for a socket-less caller on this platform's instance. */
export const callerId = (platform: Platform) => `${platform.instanceId}:${crypto.randomUUID().slice(0, 8)}`;

/** One instance's endpoint of the device RPC: its caller, its inbox, its liveness. */
export interface RpcNode extends DeviceRpc {
  readonly caller: RpcCaller;
  /** Owner -> caller: straight to the local caller, or to the caller instance's inbox. */
  reply(to: string, message: CallOutcome | CallProgress): void;
  /** Tells every caller that a lease of the user appeared, before the device is told it is connected. */
  announce(userId: string): Promise<void>;
  /** Asks the instance holding connection `connectionId` of `userId` to close it (it was replaced). */
  evict(ownerInstance: string, connectionId: string, userId: string): Promise<void>;
  start(): Promise<void>;
  /** Fails this instance's own pending calls and stops its timers and inbox. */
  stop(): Promise<void>;
}

export function createRpcNode(platform: Platform, options: RpcNodeOptions = {}): RpcNode {
  const { env, keys, logger } = platform;
  const lane = laneFor(platform);
  const owner = options.owner;
  // Leases name the platform's instance, so an owner answers on that id. A caller without sockets
  // gets an inbox of its own: in one process (SERVICE_NAME=all) it must not share the gateway's.
  const instanceId = owner ? platform.instanceId : (options.callerId ?? callerId(platform));
  const presence = presenceFor(platform);
  const metrics = rpcMetrics(platform.metrics);
  const caller = new RpcCaller({
    instanceId,
    presence,
    lane,
    keys,
    logger,
    metrics,
    owner,
    config: {
      defaultDeadlineMs: env.DEVICE_CALL_DEADLINE_MS,
      maxDeadlineMs: env.DEVICE_CALL_MAX_DEADLINE_MS,
      // Bounded by the liveness TTL: an owner that stops answering is routed around as the script would.
      routeTtlMs: options.routeTtlMs ?? Math.min(1000, Math.floor(env.DEVICE_INSTANCE_TTL_MS / 2)),
    },
  });
  const unsubscribes: Unsubscribe[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let sinceMark = Number.POSITIVE_INFINITY;
  const instanceTtl = env.DEVICE_INSTANCE_TTL_MS;
  const tick = Math.max(50, Math.floor(instanceTtl / 4));

  const onInbox = (text: string) => {
    const message = parseInbox(text);
    if (!message) return;
    metrics.relayLag.observe({ kind: message.t }, Math.max(0, Date.now() - message.ts) / 1000);
    switch (message.t) {
      case "result":
        caller.settle(message);
        return;
      case "progress":
        caller.progress(message);
        return;
      case "call":
        if (owner) owner.deliver(message);
        else reply(message.from, failure(message.id, "no device connection here", true));
        return;
      case "cancel":
        owner?.cancel(message.c, message.id, message.reason);
        return;
      case "evict":
        owner?.evict(message.id, message.user);
        return;
    }
  };

  const reply = (to: string, message: CallOutcome | CallProgress) => {
    if (to === instanceId) {
      if (message.t === "result") caller.settle(message);
      else caller.progress(message);
      return;
    }
    lane.publish(keys.instanceInbox(to), JSON.stringify(message)).catch((error: Error) => {
      logger.warn({ err: error.message }, "device rpc reply not published");
    });
  };

  // Keeps this instance's liveness mark fresh (owners only) and fails calls whose owner vanished.
  const housekeeping = async () => {
    sinceMark += tick;
    caller.sweepRoutes();
    if (owner && sinceMark >= instanceTtl / 3) {
      sinceMark = 0;
      await presence.markInstance(instanceId, instanceTtl).catch(() => {});
    }
    const owners = caller.owners();
    if (owners.length === 0) return;
    const alive = await presence.instancesAlive(owners).catch(() => undefined);
    // Unknown while Redis is down: deadlines still bound every call.
    alive?.forEach((isAlive, index) => {
      if (!isAlive) caller.failOwner(owners[index]!, "the instance holding the device stopped");
    });
  };

  const toInfo = ({ userId: _user, ...info }: Lease): DeviceInfo => info;

  return {
    caller,
    reply,
    async announce(userId) {
      await lane.publish(keys.devicePresenceChanged, userId);
    },
    async evict(ownerInstance, connectionId, userId) {
      if (ownerInstance === instanceId) {
        owner?.evict(connectionId, userId);
        return;
      }
      const message: InboxMessage = { t: "evict", id: connectionId, user: userId, ts: Date.now() };
      await lane.publish(keys.instanceInbox(ownerInstance), JSON.stringify(message));
    },
    call: (callOptions) => caller.call(callOptions),
    async isOnline(userId, deviceId) {
      const leases = await presence.list(userId);
      return leases.some((lease) => deviceId === undefined || lease.deviceId === deviceId);
    },
    devices: async (userId) => (await presence.list(userId)).map(toInfo),
    async start() {
      unsubscribes.push(
        await lane.subscribe(keys.devicePresenceChanged, (userId) => caller.forgetRoutes(userId)),
        await lane.subscribe(keys.instanceInbox(instanceId), onInbox),
      );
      if (owner) await presence.markInstance(instanceId, instanceTtl);
      sinceMark = 0;
      timer = setInterval(() => void housekeeping(), tick);
    },
    async stop() {
      clearInterval(timer);
      caller.failAll("rpc_unavailable", "this instance is shutting down");
      if (owner) await presence.dropInstance(instanceId).catch(() => {});
      for (const unsubscribe of unsubscribes.splice(0)) await unsubscribe();
    },
  };
}

export function failure(id: string, message: string, undelivered = false): CallOutcome {
  const error: CallOutcome & { ok: false } = {
    t: "result",
    id,
    ok: false,
    error: { code: "device_disconnected", message },
    ts: Date.now(),
  };
  if (undelivered) error.error.undelivered = true;
  return error;
}
