import { DeviceCallError, type DeviceCallErrorCode, type DeviceCallOptions } from "../device-rpc";
import type { Logger } from "../logger";
import { type Dispatch, type Presence, withConnection } from "../presence";
import { Deadlines } from "./deadlines";
import type { CallOutcome, CallProgress, InboxMessage } from "./envelope";
import type { InboxSender } from "./inbox";
import type { CallPath, RpcMetrics } from "./metrics";
import { type Route, RouteCache } from "./routes";

export type CallRequest = Extract<InboxMessage, { t: "call" }>;

/** The instance that holds sockets: takes calls for its connections and cancels them. */
export interface CallOwner {
  /** Must answer every call it receives (result, failure or later cancel), never throw. */
  deliver(call: CallRequest): void;
  cancel(connectionId: string, callId: string, reason: string): void;
  /** Closes a connection of `userId` that a newer connection of the same device replaced. */
  evict(connectionId: string, userId: string): void;
}

export interface CallerConfig {
  defaultDeadlineMs: number;
  maxDeadlineMs: number;
  /** How long a found owner is reused without asking presence again (0: never). */
  routeTtlMs: number;
  /**
   * How long, from its start, a call is routed again while the device's owner is marked alive but
   * nobody listens on its inbox (0: never); then it fails with `device_offline`.
   */
  unreachableWaitMs: number;
}

/** Pause before routing again a call whose owner did not listen. */
const UNREACHABLE_PAUSE_MS = 100;

interface Pending {
  id: string;
  userId: string;
  deviceId?: string;
  /** The call as sent through a remembered route: sent again through presence if it was not delivered. */
  resend?: string;
  startedAt: number;
  path: CallPath;
  owner?: string;
  connectionId?: string;
  deadlineMs: number;
  maxDeadlineAt: number;
  /** Its group among the deadlines (`Deadlines`). */
  due?: number;
  resolve(value: unknown): void;
  reject(error: DeviceCallError): void;
  onProgress?: DeviceCallOptions["onProgress"];
  /** Stops listening to the caller's abort signal, when it gave one. */
  detach?: () => void;
}

/**
 * The calling side of the device RPC on one instance: pending calls, deadlines, progress,
 * cancellation and the exactly-once settlement. Results come back through `settle` from the
 * inbox (another instance) or straight from the local owner.
 */
export class RpcCaller {
  private readonly pending = new Map<string, Pending>();
  private readonly routes: RouteCache;
  /** Call ids: a random prefix per caller and a sequence, unique across instances and cheaper than a UUID each. */
  private readonly idPrefix = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  private sequence = 0;
  private readonly deadlines = new Deadlines<Pending>((entry) =>
    this.fail(entry.id, "deadline_exceeded", "the device did not answer in time", true),
  );

  constructor(
    private readonly deps: {
      instanceId: string;
      presence: Presence;
      inbox: InboxSender;
      logger: Logger;
      metrics: RpcMetrics;
      config: CallerConfig;
      owner?: CallOwner;
    },
  ) {
    this.routes = new RouteCache(deps.config.routeTtlMs);
  }

  get size(): number {
    return this.pending.size;
  }

  call(options: DeviceCallOptions): Promise<unknown> {
    const { config, instanceId } = this.deps;
    const deadlineMs = Math.max(1, Math.min(options.deadlineMs ?? config.defaultDeadlineMs, config.maxDeadlineMs));
    const id = `${this.idPrefix}${(++this.sequence).toString(36)}`;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const startedAt = performance.now();
    const { signal } = options;
    const onAbort = signal ? () => this.fail(id, "cancelled", "the call was cancelled", true) : undefined;
    const entry: Pending = {
      id,
      userId: options.userId,
      deviceId: options.deviceId,
      startedAt,
      path: "none",
      deadlineMs,
      maxDeadlineAt: startedAt + Math.max(deadlineMs, config.maxDeadlineMs),
      resolve,
      reject,
      onProgress: options.onProgress,
      detach: onAbort ? () => signal?.removeEventListener("abort", onAbort) : undefined,
    };
    this.pending.set(id, entry);
    if (signal?.aborted) {
      this.fail(id, "cancelled", "the call was cancelled before it started", false);
      return promise;
    }
    if (onAbort) signal?.addEventListener("abort", onAbort, { once: true });
    this.deadlines.arm(entry, deadlineMs);
    const request: Omit<CallRequest, "c"> = {
      t: "call",
      id,
      from: instanceId,
      user: options.userId,
      name: options.name,
      args: options.args ?? {},
      deadline_ms: deadlineMs,
      origin: options.origin ?? "server",
      ts: Date.now(),
    };
    const text = JSON.stringify(request);
    const route = this.routes.get(entry.userId, entry.deviceId, performance.now());
    if (route) this.viaRoute(id, entry, request, text, route);
    else void this.dispatch(id, entry, request, text);
    return promise;
  }

  /** Through presence: its script finds the device's connection and hands the call over. */
  private async dispatch(id: string, entry: Pending, request: Omit<CallRequest, "c">, text: string): Promise<void> {
    const { presence, instanceId } = this.deps;
    let target: Dispatch;
    try {
      target = await presence.dispatch(entry.userId, entry.deviceId, instanceId, text);
    } catch (error) {
      this.unavailable(id, error);
      return;
    }
    if (
      target.status === "unreachable" &&
      performance.now() + UNREACHABLE_PAUSE_MS < entry.startedAt + this.deps.config.unreachableWaitMs
    ) {
      // The owner's mark is live but its inbox has no subscriber: it is restoring its subscription
      // after a Redis outage (its presence connection came back first), or it died and its mark
      // expires within the instance TTL. Nothing was delivered, so asking again is safe.
      await Bun.sleep(UNREACHABLE_PAUSE_MS);
      if (this.pending.has(id)) void this.dispatch(id, entry, request, text);
      return;
    }
    if (target.status === "offline" || target.status === "unreachable") {
      this.routes.forget(entry.userId, entry.deviceId);
      this.fail(id, "device_offline", "no device of this user is connected", false);
      return;
    }
    if (target.status === "sent")
      this.routes.remember(entry.userId, entry.deviceId, target.connectionId, target.instanceId, performance.now());
    // The device is here now: an expired route kept for the calls behind a lookup must not outlive it.
    else this.routes.forget(entry.userId, entry.deviceId);
    this.handedOver(id, entry, request, target);
  }

  /**
   * Straight to the owner of a remembered route, skipping presence: one inbox message
   * (`InboxSender`). Nobody listening there (the owner stopped, or is restoring its subscription):
   * the route is dropped and the call goes through presence. Every call takes this path while a route is fresh, so it stays one
   * promise continuation rather than a chain of async functions.
   */
  private viaRoute(id: string, entry: Pending, request: Omit<CallRequest, "c">, text: string, route: Route): void {
    const { connectionId, instanceId } = route;
    entry.resend = text;
    this.deps.inbox.send(instanceId, withConnection(text, connectionId)).then(
      (receivers) => {
        if (receivers > 0) {
          this.handedOver(id, entry, request, { status: "sent", connectionId, instanceId });
          return;
        }
        entry.resend = undefined;
        this.routes.forget(entry.userId, entry.deviceId, route);
        if (this.pending.has(id)) void this.dispatch(id, entry, request, text);
      },
      (error) => this.unavailable(id, error),
    );
  }

  /** The call reached the device's owner (this instance or another). */
  private handedOver(
    id: string,
    entry: Pending,
    request: Omit<CallRequest, "c">,
    target: Extract<Dispatch, { status: "sent" | "local" }>,
  ): void {
    entry.connectionId = target.connectionId;
    entry.owner = target.instanceId;
    entry.path = target.status === "local" ? "local" : "remote";
    if (!this.pending.has(id)) {
      // Settled (deadline or abort) while routing: the device still got the call, withdraw it.
      this.sendCancel(entry, id, "cancelled");
      return;
    }
    if (target.status === "local") {
      const { owner } = this.deps;
      if (!owner) this.fail(id, "device_disconnected", "the device's connection is gone", false);
      else owner.deliver({ ...request, c: target.connectionId });
    }
  }

  private unavailable(id: string, error: unknown): void {
    this.deps.logger.warn({ err: (error as Error).message }, "device call dispatch failed");
    this.fail(id, "rpc_unavailable", "device routing is unavailable, try again", false);
  }

  /** A result from the owner (local or through the inbox); unknown ids are late or duplicates. */
  settle(message: CallOutcome): boolean {
    if (!message.ok && message.error.undelivered) {
      // The remembered connection is gone and the device never saw the call: ask presence where it is now.
      const entry = this.pending.get(message.id);
      const text = entry?.resend;
      if (entry && text) {
        entry.resend = undefined;
        this.routes.forget(entry.userId, entry.deviceId);
        void this.dispatch(message.id, entry, JSON.parse(text), text);
        return true;
      }
    }
    const entry = this.take(message.id);
    if (!entry) {
      this.deps.metrics.late.inc({ where: "caller" });
      return false;
    }
    if (message.ok) {
      this.record(entry, "ok");
      entry.resolve(message.result);
    } else {
      const { code, message: text, tool_code } = message.error;
      this.record(entry, code);
      entry.reject(new DeviceCallError(code, text, tool_code));
    }
    return true;
  }

  progress(message: CallProgress): void {
    const entry = this.pending.get(message.id);
    if (!entry) {
      this.deps.metrics.late.inc({ where: "caller" });
      return;
    }
    const remaining = entry.maxDeadlineAt - performance.now();
    this.deadlines.arm(entry, Math.min(entry.deadlineMs, remaining));
    try {
      entry.onProgress?.({ progress: message.progress, total: message.total, message: message.message });
    } catch (error) {
      this.deps.logger.warn({ err: error }, "onProgress handler threw");
    }
  }

  /** Fails every pending call routed to `instanceId` (it stopped, or stopped answering). */
  failOwner(instanceId: string, message: string): void {
    this.routes.forgetInstance(instanceId);
    for (const [id, entry] of this.pending)
      if (entry.path === "remote" && entry.owner === instanceId) this.fail(id, "device_disconnected", message, false);
  }

  /** Owners of pending cross-instance calls, for the liveness check. */
  owners(): string[] {
    const owners = new Set<string>();
    for (const entry of this.pending.values()) if (entry.path === "remote" && entry.owner) owners.add(entry.owner);
    return [...owners];
  }

  /** A lease of the user appeared somewhere: the next calls ask presence again. */
  forgetRoutes(userId: string): void {
    this.routes.forgetUser(userId);
  }

  sweepRoutes(): void {
    this.routes.sweep(performance.now());
  }

  get routeCount(): number {
    return this.routes.size;
  }

  failAll(code: DeviceCallErrorCode, message: string): void {
    for (const id of [...this.pending.keys()]) this.fail(id, code, message, true);
  }

  private fail(id: string, code: DeviceCallErrorCode, message: string, tellDevice: boolean): void {
    const entry = this.take(id);
    if (!entry) return;
    if (tellDevice) this.sendCancel(entry, id, code === "deadline_exceeded" ? "deadline" : "cancelled");
    this.record(entry, code);
    entry.reject(new DeviceCallError(code, message));
  }

  private take(id: string): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    this.deadlines.clear(entry);
    entry.detach?.();
    return entry;
  }

  private sendCancel(entry: Pending, id: string, reason: string): void {
    const { connectionId, owner } = entry;
    if (!connectionId || !owner) return;
    if (owner === this.deps.instanceId) {
      this.deps.owner?.cancel(connectionId, id, reason);
      return;
    }
    const message = JSON.stringify({ t: "cancel", c: connectionId, id, reason, ts: Date.now() });
    this.deps.inbox.send(owner, message).catch(() => {});
  }

  private record(entry: Pending, outcome: string): void {
    const { metrics } = this.deps;
    metrics.calls.inc({ outcome, path: entry.path });
    metrics.latency.observe({ path: entry.path }, (performance.now() - entry.startedAt) / 1000);
  }
}
