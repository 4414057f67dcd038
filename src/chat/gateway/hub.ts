import { CloseCode, type ServerFrame, type ToolProgressFrame, type ToolResultFrame } from "../../protocol";
import type { Unsubscribe } from "../../shared/bus/bus";
import type { CallOwner, CallRequest } from "../../shared/device-rpc/caller";
import { laneFor } from "../../shared/device-rpc/lane";
import type { RpcMetrics } from "../../shared/device-rpc/metrics";
import { failure, type RpcNode } from "../../shared/device-rpc/node";
import { parseStream } from "../../shared/device-rpc/push";
import type { Platform } from "../../shared/platform";
import type { Admission, Lease, Presence } from "../../shared/presence";
import { limitsFor, type Tier } from "../../shared/tiers";
import type { DeviceConnection } from "./connection";

/** Grace after a call's deadline before the owner forgets it (the caller cancels first). */
const OWNED_GRACE_MS = 1000;

/**
 * The live device sockets of this instance and the owner side of the device RPC: delivers calls
 * to sockets, relays answers to callers, keeps leases alive, relays pushed frames.
 */
export class DeviceHub implements CallOwner {
  readonly byId = new Map<string, DeviceConnection>();
  private readonly byUser = new Map<string, Set<DeviceConnection>>();
  private readonly streams = new Map<string, Promise<Unsubscribe | undefined>>();
  /** This instance's RPC node, built by the hub as its owner: calls reach sockets through it. */
  readonly node: RpcNode;

  constructor(
    private readonly platform: Platform,
    private readonly presence: Presence,
    private readonly metrics: RpcMetrics,
    private readonly onCount: (count: number) => void,
    makeNode: (owner: CallOwner) => RpcNode,
  ) {
    this.node = makeNode(this);
  }

  /** Devices of one user connected at once, across instances (DEVICE_MAX_PER_USER times the tier's scale). */
  maxDevices(tier: Tier): number {
    return this.platform.env.DEVICE_MAX_PER_USER * limitsFor(tier).deviceScale;
  }

  /**
   * Makes an authenticated connection reachable: its device slot and lease (refused at the user's
   * cap), local maps, stream relay. A refused connection leaves nothing behind; the caller closes it.
   * The cost is the same whatever the number of the user's devices: one presence script, no listing.
   */
  async admit(connection: DeviceConnection): Promise<"admitted" | "full" | "superseded"> {
    const session = connection.session!;
    const max = this.maxDevices(session.tier);
    const devices = this.byUser.get(session.userId) ?? new Set<DeviceConnection>();
    // A flood from one account stops here, before Redis: this instance alone already holds the cap.
    if (!hasDevice(devices, session.deviceId) && distinctDevices(devices) >= max) return "full";
    this.byId.set(connection.id, connection);
    devices.add(connection);
    this.byUser.set(session.userId, devices);
    this.onCount(this.byId.size);
    const streamReady = this.followStream(session.userId);
    const admission = await this.presence
      .admit(this.lease(connection), this.platform.env.DEVICE_LEASE_TTL_MS, max)
      .catch((error: Error): Admission => {
        // The next lease refresh retries; the socket stays usable locally meanwhile, capped locally.
        this.platform.logger.warn({ err: error.message }, "device lease not stored");
        return { status: "admitted" };
      });
    if (admission.status !== "admitted") {
      this.forget(connection);
      return admission.status;
    }
    await streamReady;
    await this.replaceOlder(connection, admission.replaced);
    // Callers remembering where this user's calls went must ask presence again; done before `welcome`.
    await this.node.announce(session.userId).catch((error: Error) => {
      this.platform.logger.warn({ err: error.message }, "device presence change not announced");
    });
    return "admitted";
  }

  /**
   * One socket per device: an older connection with the same device id, here or on another
   * instance, is closed (a reconnect after a network change, before the old socket timed out).
   * Only older ones, so two connections racing each other do not close both; the device's slot
   * named the one on another instance, and a newer one already there made presence refuse this one.
   */
  private async replaceOlder(
    connection: DeviceConnection,
    replaced: { connectionId: string; instanceId: string } | undefined,
  ): Promise<void> {
    const session = connection.session!;
    const older = (connectedAt: number, connectionId: string) =>
      connectedAt < connection.connectedAt || (connectedAt === connection.connectedAt && connectionId < connection.id);
    for (const local of this.byUser.get(session.userId) ?? []) {
      if (local.session?.deviceId === session.deviceId && local !== connection && older(local.connectedAt, local.id)) {
        this.evict(local.id, session.userId);
      }
    }
    if (!replaced || replaced.instanceId === this.platform.instanceId) return;
    await this.node.evict(replaced.instanceId, replaced.connectionId, session.userId).catch((error: Error) => {
      this.platform.logger.warn({ err: error.message }, "replaced device connection not closed");
    });
  }

  evict(connectionId: string, userId: string): void {
    const connection = this.byId.get(connectionId);
    if (connection?.session?.userId !== userId) return;
    connection.close(CloseCode.replaced, "replaced by a newer connection");
  }

  /** Forgets a closed connection and fails what it owed; only its own lease is removed. */
  async release(connection: DeviceConnection): Promise<void> {
    const session = connection.session;
    if (!session || !this.forget(connection)) return;
    for (const [id, call] of connection.calls)
      this.node.reply(call.from, failure(id, "the device disconnected"), call.expiresAt);
    connection.calls.clear();
    await this.presence.remove(session.userId, connection.id).catch(() => {});
  }

  deliver(call: CallRequest): void {
    const connection = this.byId.get(call.c);
    if (connection?.state !== "open" || connection.session?.userId !== call.user) {
      this.node.reply(call.from, failure(call.id, "the device's connection is gone", true));
      return;
    }
    if (!connection.session?.tools.includes(call.name)) {
      this.node.reply(call.from, {
        t: "result",
        id: call.id,
        ok: false,
        error: { code: "tool_not_supported", message: `the device does not offer ${call.name}` },
        ts: Date.now(),
      });
      return;
    }
    const now = Date.now();
    connection.calls.set(call.id, {
      from: call.from,
      deadlineMs: call.deadline_ms,
      expiresAt: now + call.deadline_ms + OWNED_GRACE_MS,
      maxExpiresAt: now + this.platform.env.DEVICE_CALL_MAX_DEADLINE_MS + OWNED_GRACE_MS,
    });
    const sent = connection.send({
      type: "tool_call",
      id: call.id,
      name: call.name,
      args: call.args,
      deadline_ms: call.deadline_ms,
      origin: call.origin,
    });
    if (!sent && connection.calls.delete(call.id))
      this.node.reply(call.from, failure(call.id, "the device's connection is gone", true));
  }

  cancel(connectionId: string, callId: string, reason: string): void {
    const connection = this.byId.get(connectionId);
    if (connection?.calls.delete(callId)) connection.send({ type: "tool_cancel", id: callId, reason });
  }

  /** A device's answer: only calls delivered to this very socket can be answered by it. */
  onResult(connection: DeviceConnection, frame: ToolResultFrame): void {
    const call = connection.calls.get(frame.id);
    if (!call) {
      this.metrics.late.inc({ where: "gateway" });
      return;
    }
    connection.calls.delete(frame.id);
    this.node.reply(
      call.from,
      frame.ok
        ? { t: "result", id: frame.id, ok: true, result: frame.result, ts: Date.now() }
        : {
            t: "result",
            id: frame.id,
            ok: false,
            error: { code: "tool_error", message: frame.error.message, tool_code: frame.error.code },
            ts: Date.now(),
          },
      // Published again until then if the caller's inbox is unreachable (a Redis outage).
      call.expiresAt,
    );
  }

  onProgress(connection: DeviceConnection, frame: ToolProgressFrame): void {
    const call = connection.calls.get(frame.id);
    if (!call) {
      this.metrics.late.inc({ where: "gateway" });
      return;
    }
    call.expiresAt = Math.min(Date.now() + call.deadlineMs + OWNED_GRACE_MS, call.maxExpiresAt);
    this.node.reply(call.from, {
      t: "progress",
      id: frame.id,
      progress: frame.progress,
      total: frame.total,
      message: frame.message,
      ts: Date.now(),
    });
  }

  /** Sends a frame to this instance's sockets of the user (or one device); returns how many took it. */
  deliverLocal(userId: string, frame: ServerFrame, deviceId?: string): number {
    let count = 0;
    for (const connection of this.byUser.get(userId) ?? []) {
      if (deviceId !== undefined && connection.session?.deviceId !== deviceId) continue;
      if (connection.send(frame)) count += 1;
    }
    return count;
  }

  /** Drops a connection from the local maps; false when it was not there. */
  private forget(connection: DeviceConnection): boolean {
    const userId = connection.session?.userId;
    if (userId === undefined || !this.byId.delete(connection.id)) return false;
    this.onCount(this.byId.size);
    const devices = this.byUser.get(userId);
    devices?.delete(connection);
    if (devices?.size === 0) {
      this.byUser.delete(userId);
      void this.unfollowStream(userId);
    }
    return true;
  }

  hasUser(userId: string): boolean {
    return this.byUser.has(userId);
  }

  /** This instance's sockets of the user. */
  connectionsOf(userId: string): DeviceConnection[] {
    return [...(this.byUser.get(userId) ?? [])];
  }

  /** Heartbeat of this instance's leases; recreates any lost with a Redis restart. */
  async refreshLeases(): Promise<void> {
    const leases: Lease[] = [];
    for (const connection of this.byId.values()) if (connection.state === "open") leases.push(this.lease(connection));
    await this.presence.refresh(leases, this.platform.env.DEVICE_LEASE_TTL_MS);
  }

  /** Closes silent sockets and forgets calls whose caller never came back. */
  sweep(now: number, silentAfterMs: number, closeSilent: (connection: DeviceConnection) => void): void {
    for (const connection of this.byId.values()) {
      if (now - connection.lastSeen > silentAfterMs) closeSilent(connection);
      for (const [id, call] of connection.calls) {
        if (call.expiresAt > now) continue;
        connection.calls.delete(id);
        connection.send({ type: "tool_cancel", id, reason: "deadline" });
      }
    }
  }

  connections(): DeviceConnection[] {
    return [...this.byId.values()];
  }

  private lease(connection: DeviceConnection): Lease {
    const session = connection.session!;
    return {
      userId: session.userId,
      deviceId: session.deviceId,
      deviceName: session.deviceName,
      connectionId: connection.id,
      instanceId: this.platform.instanceId,
      tools: [...session.tools],
      connectedAt: connection.connectedAt,
    };
  }

  private followStream(userId: string): Promise<unknown> {
    let subscription = this.streams.get(userId);
    if (!subscription) {
      const { keys, instanceId } = this.platform;
      // On the device RPC's lane, as the pushes are: sharded pub/sub on a Cluster, where the
      // publisher's count of receivers is exact (plain PUBLISH counts one node's subscribers only).
      subscription = laneFor(this.platform)
        .subscribe(keys.deviceStream(userId), (text) => {
          const message = parseStream(text);
          if (!message || message.from === instanceId) return;
          this.metrics.relayLag.observe({ kind: "stream" }, Math.max(0, Date.now() - message.ts) / 1000);
          this.deliverLocal(userId, message.f as ServerFrame, message.d);
        })
        .catch((error: Error) => {
          this.streams.delete(userId);
          this.platform.logger.warn({ err: error.message }, "device stream not subscribed");
          return undefined;
        });
      this.streams.set(userId, subscription);
    }
    return subscription;
  }

  private async unfollowStream(userId: string): Promise<void> {
    const subscription = this.streams.get(userId);
    if (!subscription) return;
    this.streams.delete(userId);
    const unsubscribe = await subscription;
    // A device of the same user may have connected meanwhile: keep this subscription for it.
    if (unsubscribe && this.byUser.has(userId) && !this.streams.has(userId)) {
      this.streams.set(userId, Promise.resolve(unsubscribe));
      return;
    }
    await unsubscribe?.();
  }
}

const hasDevice = (connections: Set<DeviceConnection>, deviceId: string) => {
  for (const connection of connections) if (connection.session?.deviceId === deviceId) return true;
  return false;
};

const distinctDevices = (connections: Set<DeviceConnection>) =>
  new Set([...connections].map((connection) => connection.session?.deviceId)).size;
