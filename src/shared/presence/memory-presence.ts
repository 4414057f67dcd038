import type { Bus } from "../bus/bus";
import type { Keys } from "../keys";
import { type Dispatch, type Lease, type Presence, withConnection } from "./presence";

/** One process, no Redis (embedded mode): leases and liveness marks in maps, inboxes on the in-process bus. */
export class MemoryPresence implements Presence {
  private readonly users = new Map<string, Map<string, { lease: Lease; expiresAt: number }>>();
  private readonly instances = new Map<string, number>();

  constructor(
    private readonly bus: Bus,
    private readonly keys: Keys,
  ) {}

  async put(lease: Lease, ttlMs: number): Promise<void> {
    const leases = this.users.get(lease.userId) ?? new Map();
    leases.set(lease.connectionId, { lease: { ...lease }, expiresAt: Date.now() + ttlMs });
    this.users.set(lease.userId, leases);
  }

  async refresh(leases: Lease[], ttlMs: number): Promise<void> {
    for (const lease of leases) await this.put(lease, ttlMs);
  }

  async remove(userId: string, connectionId: string): Promise<boolean> {
    const leases = this.users.get(userId);
    const removed = leases?.delete(connectionId) ?? false;
    if (leases?.size === 0) this.users.delete(userId);
    return removed;
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
