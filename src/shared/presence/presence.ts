import type { DeviceInfo } from "../device-rpc";

/**
 * Device presence as leases (docs/architecture.md "Device RPC"): one entry per connection, kept alive by its
 * instance and expiring on its own when that instance dies. Removal compares the connection id, so
 * the close of an old socket never erases a newer connection of the same device. Redis in
 * production, in-process in embedded mode; both pass `test/shared/presence.contract.test.ts`.
 */
/** A live connection of a device: the contract's `DeviceInfo` plus its user. */
export interface Lease extends DeviceInfo {
  userId: string;
}

/** Where a call should go, decided and, for another instance, handed over. */
export type Dispatch =
  | { status: "offline" }
  /** The lease belongs to the asking instance: deliver on the local socket. */
  | { status: "local"; connectionId: string; instanceId: string }
  /** Published to the owning instance's inbox and somebody received it. */
  | { status: "sent"; connectionId: string; instanceId: string }
  /** A lease exists but nobody listens on its instance's inbox. */
  | { status: "unreachable"; connectionId: string; instanceId: string };

/**
 * A new connection's admission. Each user has one slot per device (its most recent connection):
 * a device already holding a slot always gets in, replacing its previous connection; a new device
 * gets in only while the user holds fewer than `maxDevices` live slots.
 */
export type Admission =
  /** Leased; `replaced` is the device's previous connection, which the caller closes. */
  | { status: "admitted"; replaced?: { connectionId: string; instanceId: string } }
  /** The user is at the cap: nothing was written. */
  | { status: "full" }
  /** A newer connection of the same device already holds the slot: nothing was written. */
  | { status: "superseded" };

export interface Presence {
  /**
   * Admits a new connection: checks the cap and leases it in one atomic step, reading only the
   * device's own slot and the slot count, never the user's other leases (two Redis round trips:
   * the live instances, then the admission).
   */
  admit(lease: Lease, ttlMs: number, maxDevices: number): Promise<Admission>;
  /** Creates or renews a lease for `ttlMs` (and its device slot), with no cap. */
  put(lease: Lease, ttlMs: number): Promise<void>;
  /** Renews many leases at once (an instance's heartbeat); a missing lease is recreated. */
  refresh(leases: Lease[], ttlMs: number): Promise<void>;
  /** Compare-and-delete: removes the lease only if it is this connection's, and frees its device slot if it holds it. */
  remove(userId: string, connectionId: string): Promise<boolean>;
  /** Live leases of the user on live instances, most recent first. */
  list(userId: string): Promise<Lease[]>;
  /**
   * Picks the target lease (the device, or the user's most recent one) and, when it lives on another
   * instance, publishes `message` (a JSON object text) to that instance's inbox with `"c": connectionId`
   * added. Three Redis round trips in the Redis adapter (live instances, the user's leases, the
   * publish); callers remember the route, so only a call to a device not recently called pays them.
   */
  dispatch(userId: string, deviceId: string | undefined, fromInstance: string, message: string): Promise<Dispatch>;
  /** Marks an instance alive for `ttlMs`; leases of instances not alive are ignored. */
  markInstance(instanceId: string, ttlMs: number): Promise<void>;
  dropInstance(instanceId: string): Promise<void>;
  /** For each id, whether its liveness mark is still there. */
  instancesAlive(instanceIds: string[]): Promise<boolean[]>;
}

/** Adds the target connection id to a JSON object text without parsing it again. */
export function withConnection(message: string, connectionId: string): string {
  return `{"c":${JSON.stringify(connectionId)},${message.slice(1)}`;
}
