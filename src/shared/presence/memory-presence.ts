import type { Bus } from "../bus/bus";
import type { Keys } from "../keys";
import { type Admission, type Dispatch, type Lease, type Presence, withConnection } from "./presence";

/** A device's slot: its most recent connection, as in the Redis adapter. */
interface Slot {
  connectionId: string;
  instanceId: string;
  connectedAt: number;
  expiresAt: number;
}

const older = (at: number, connectionId: string, than: { connectedAt: number; connectionId: string }) =>
  at < than.connectedAt || (at === than.connectedAt && connectionId < than.connectionId);

/** One process, no Redis (embedded mode): leases and liveness marks in maps, inboxes on the in-process bus. */
export class MemoryPresence implements Presence {
  private readonly users = new Map<string, Map<string, { lease: Lease; expiresAt: number }>>();
  /** user id -> device id -> slot. */
  private readonly slots = new Map<string, Map<string, Slot>>();
  private readonly instances = new Map<string, number>();

  constructor(
    private readonly bus: Bus,
    private readonly keys: Keys,
  ) {}

  async admit(lease: Lease, ttlMs: number, maxDevices: number): Promise<Admission> {
    const now = Date.now();
    const slots = this.slots.get(lease.userId) ?? new Map<string, Slot>();
    let held = this.liveSlot(slots, lease.deviceId, now);
    if (held && held.connectionId !== lease.connectionId && !this.alive(held.instanceId, now)) held = undefined;
    if (held && held.connectionId !== lease.connectionId && older(lease.connectedAt, lease.connectionId, held))
      return { status: "superseded" };
    if (!held && slots.size >= maxDevices) {
      for (const [deviceId, slot] of slots)
        if (slot.expiresAt <= now || !this.alive(slot.instanceId, now)) slots.delete(deviceId);
      if (slots.size >= maxDevices) return { status: "full" };
    }
    this.store(lease, ttlMs, now, true);
    return held && held.connectionId !== lease.connectionId
      ? { status: "admitted", replaced: { connectionId: held.connectionId, instanceId: held.instanceId } }
      : { status: "admitted" };
  }

  async put(lease: Lease, ttlMs: number): Promise<void> {
    this.store(lease, ttlMs, Date.now(), false);
  }

  /** Writes the lease, and the device's slot unless a newer connection holds it (`claim`: it does not). */
  private store(lease: Lease, ttlMs: number, now: number, claim: boolean): void {
    const leases = this.users.get(lease.userId) ?? new Map();
    leases.set(lease.connectionId, { lease: { ...lease }, expiresAt: now + ttlMs });
    this.users.set(lease.userId, leases);
    const slots = this.slots.get(lease.userId) ?? new Map<string, Slot>();
    const held = this.liveSlot(slots, lease.deviceId, now);
    if (
      claim ||
      !held ||
      held.connectionId === lease.connectionId ||
      !older(lease.connectedAt, lease.connectionId, held)
    )
      slots.set(lease.deviceId, {
        connectionId: lease.connectionId,
        instanceId: lease.instanceId,
        connectedAt: lease.connectedAt,
        expiresAt: now + ttlMs,
      });
    this.slots.set(lease.userId, slots);
  }

  private liveSlot(slots: Map<string, Slot>, deviceId: string, now: number): Slot | undefined {
    const slot = slots.get(deviceId);
    return slot && slot.expiresAt > now ? slot : undefined;
  }

  async refresh(leases: Lease[], ttlMs: number): Promise<void> {
    for (const lease of leases) await this.put(lease, ttlMs);
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    const leases = this.users.get(userId);
    const entry = leases?.get(connectionId);
    if (!leases || !entry) return false;
    leases.delete(connectionId);
    if (leases.size === 0) this.users.delete(userId);
    const slots = this.slots.get(userId);
    if (slots?.get(entry.lease.deviceId)?.connectionId === connectionId) slots.delete(entry.lease.deviceId);
    if (slots?.size === 0) this.slots.delete(userId);
    return true;
  }

  async list(userId: string): Promise<Lease[]> {
    const leases = this.users.get(userId);
    if (!leases) return [];
    const now = Date.now();
    const live: Lease[] = [];
    for (const [connectionId, entry] of leases) {
      if (entry.expiresAt <= now) leases.delete(connectionId);
      else if (this.alive(entry.lease.instanceId, now)) live.push({ ...entry.lease });
    }
    return live.sort((a, b) => b.connectedAt - a.connectedAt);
  }

  async dispatch(userId: string, deviceId: string | undefined, fromInstance: string, message: string) {
    const target = (await this.list(userId)).find((lease) => deviceId === undefined || lease.deviceId === deviceId);
    if (!target) return { status: "offline" } satisfies Dispatch;
    const where = { connectionId: target.connectionId, instanceId: target.instanceId };
    if (target.instanceId === fromInstance) return { status: "local", ...where } satisfies Dispatch;
    const receivers = await this.bus.publish(
      this.keys.instanceInbox(target.instanceId),
      withConnection(message, target.connectionId),
    );
    return { status: receivers > 0 ? "sent" : "unreachable", ...where } satisfies Dispatch;
  }

  async markInstance(instanceId: string, ttlMs: number): Promise<void> {
    this.instances.set(instanceId, Date.now() + ttlMs);
  }

  async dropInstance(instanceId: string): Promise<void> {
    this.instances.delete(instanceId);
  }

  async instancesAlive(instanceIds: string[]): Promise<boolean[]> {
    const now = Date.now();
    return instanceIds.map((id) => this.alive(id, now));
  }

  private alive(instanceId: string, now: number): boolean {
    return (this.instances.get(instanceId) ?? 0) > now;
  }
}
