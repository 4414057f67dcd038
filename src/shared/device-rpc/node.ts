import type { Unsubscribe } from "../bus/bus";
import type { DeviceInfo, DeviceRpc } from "../device-rpc";
import type { Platform } from "../platform";
import { type Lease, presenceFor } from "../presence";
import { withTimeout } from "../timeout";
import { type CallOwner, RpcCaller } from "./caller";
import { type CallOutcome, type CallProgress, type InboxMessage, readInbox } from "./envelope";
import { InboxSender } from "./inbox";
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

/** First pause before a result is published again, doubled up to the last. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 500;

/** A distinct id for a socket-less caller on this platform's instance. */
export const callerId = (platform: Platform) => `${platform.instanceId}:${crypto.randomUUID().slice(0, 8)}`;

/** One instance's endpoint of the device RPC: its caller, its inbox, its liveness. */
export interface RpcNode extends DeviceRpc {
  readonly caller: RpcCaller;
  /**
   * Owner -> caller: straight to the local caller, or to the caller instance's inbox. A result is
   * published again until the caller's inbox takes it or `until` (epoch ms, the call's deadline at
   * the owner) passes; progress is sent once.
   */
  reply(to: string, message: CallOutcome | CallProgress, until?: number): void;
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
  const inbox = new InboxSender(lane, keys);
  const owner = options.owner;
  // Leases name the platform's instance, so an owner answers on that id. A caller without sockets
  // gets an inbox of its own: in one process (SERVICE_NAME=all) it must not share the gateway's.
  const instanceId = owner ? platform.instanceId : (options.callerId ?? callerId(platform));
  const presence = presenceFor(platform);
  const metrics = rpcMetrics(platform.metrics);
  const caller = new RpcCaller({
    instanceId,
    presence,
    inbox,
    logger,
    metrics,
    owner,
    config: {
      defaultDeadlineMs: env.DEVICE_CALL_DEADLINE_MS,
      maxDeadlineMs: env.DEVICE_CALL_MAX_DEADLINE_MS,
      // Bounded by the liveness TTL: an owner that stops answering is routed around as the script would.
      routeTtlMs: options.routeTtlMs ?? Math.min(1000, Math.floor(env.DEVICE_INSTANCE_TTL_MS / 2)),
      // An owner that does not listen either comes back or loses its mark within the liveness TTL.
      unreachableWaitMs: env.DEVICE_INSTANCE_TTL_MS,
    },
  });
  const unsubscribes: Unsubscribe[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopped = false;
  let sinceMark = Number.POSITIVE_INFINITY;
  let marking = false;
  /** Until then an owner without a liveness mark is not taken for dead: it may not have marked itself since an outage. */
  let unsureUntil = 0;
  const instanceTtl = env.DEVICE_INSTANCE_TTL_MS;
  const tick = Math.max(50, Math.floor(instanceTtl / 4));

  const onInbox = (text: string) => readInbox(text, onMessage);

  // One message of a batch failing must not cost the others theirs: it is logged and skipped.
  const onMessage = (message: InboxMessage) => {
    try {
      handle(message);
    } catch (error) {
      logger.error({ err: error, kind: message.t }, "device rpc inbox message failed");
    }
  };

  const handle = (message: InboxMessage) => {
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

  const reply = (to: string, message: CallOutcome | CallProgress, until?: number) => {
    if (to === instanceId) {
      if (message.t === "result") caller.settle(message);
      else caller.progress(message);
      return;
    }
    if (message.t === "result") {
      publishResult(to, JSON.stringify(message), until ?? Date.now() + env.DEVICE_CALL_DEADLINE_MS);
      return;
    }
    inbox.send(to, JSON.stringify(message)).catch((error: Error) => {
      logger.warn({ err: error.message }, "device rpc progress not published");
    });
  };

  // Pub/sub keeps nothing for an absent subscriber, and the caller waits for its result until its
  // deadline: so the owner publishes a result again, with backoff, while Redis refuses it or nobody
  // takes it (the caller's inbox subscription not yet restored after an outage), until that
  // deadline. The alternative, callers asking owners again by call id once Redis is back, would
  // need owners to keep results and callers to track their outages; this needs neither, and a
  // result that misses the deadline is of use to nobody. What it cannot cover (a result taken by
  // Redis just before the caller's connection dropped) ends at the deadline as
  // `deadline_exceeded`, which the agent runner treats like a disconnect.
  // The first attempt is a plain promise continuation (every result takes it); retries, rare, loop.
  const publishResult = (to: string, text: string, until: number) => {
    inbox.send(to, text).then(
      (receivers) => {
        if (receivers === 0) void publishAgain(keys.instanceInbox(to), text, until);
      },
      () => void publishAgain(keys.instanceInbox(to), text, until),
    );
  };
  // Rare (an outage): each on its own, on the inbox every version listens on.
  const publishAgain = async (channel: string, text: string, until: number) => {
    for (let attempt = 1, pause = RETRY_FIRST_MS; ; attempt++, pause = Math.min(pause * 2, RETRY_MAX_MS)) {
      if (stopped || Date.now() + pause > until) {
        metrics.resultRetries.inc({ outcome: "dropped" });
        logger.warn({ attempts: attempt }, "device rpc result not delivered before the call's deadline");
        return;
      }
      await Bun.sleep(pause);
      const receivers = await lane.publish(channel, text).catch(() => 0);
      if (receivers > 0) {
        metrics.resultRetries.inc({ outcome: "delivered" });
        return;
      }
    }
  };

  // Keeps this instance's liveness mark fresh (owners only) and fails calls whose owner vanished.
  const housekeeping = async () => {
    sinceMark += tick;
    caller.sweepRoutes();
    if (owner && !marking && sinceMark >= instanceTtl / 3) {
      // Counted from the last mark stored: after an outage, which likely outlived the mark, it is
      // stored again at the next tick rather than a period later.
      marking = true;
      // A mark sent to a master that just died (a Cluster failover) waits for the command timeout,
      // longer than the mark lives: give up after a tick, so the next tick marks on the new master.
      await withTimeout(presence.markInstance(instanceId, instanceTtl), tick, "liveness mark")
        .then(() => {
          sinceMark = 0;
        })
        .catch(() => {})
        .finally(() => {
          marking = false;
        });
    }
    const owners = caller.owners();
    if (owners.length === 0) return;
    const alive = await presence.instancesAlive(owners).catch(() => undefined);
    if (!alive) {
      // Unknown while Redis is down: deadlines still bound every call. Once it is back, owners get
      // one mark period to mark themselves again before their calls are failed.
      unsureUntil = performance.now() + instanceTtl;
      return;
    }
    if (performance.now() < unsureUntil) return;
    alive.forEach((isAlive, index) => {
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
      await inbox.send(ownerInstance, JSON.stringify(message));
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
        await lane.subscribe(keys.instanceBatchInbox(instanceId), onInbox),
      );
      if (owner) await presence.markInstance(instanceId, instanceTtl);
      sinceMark = 0;
      timer = setInterval(() => void housekeeping(), tick);
    },
    async stop() {
      stopped = true;
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
