import type { AnyElysia } from "elysia";
import { CloseCode, type ServerFrame } from "../../protocol";
import type { DevicePush, DeviceRpc } from "../../shared/device-rpc";
import { rpcMetrics } from "../../shared/device-rpc/metrics";
import { createRpcNode } from "../../shared/device-rpc/node";
import { createStreamPublisher } from "../../shared/device-rpc/push";
import type { Platform } from "../../shared/platform";
import { presenceFor } from "../../shared/presence";
import { type ChatHandlers, type ChatRateLimiter, type JourneyHandler, sharedChatLimiter } from "./chat-seam";
import { DeviceHub } from "./hub";
import { createPluginAnnouncer, type LocalPluginSource } from "./plugins-frame";
import { deviceSocket } from "./socket";

export interface DeviceGatewayOptions {
  /** The device routing the chat engine and journey relay were built on; made here when absent. */
  routing?: DeviceRouting;
  chat?: ChatHandlers;
  /** Where journey frames go (the relay to the agent service). */
  journeys?: JourneyHandler;
  /** The per-tier requests/min check for `chat` frames; defaults to the platform's shared limiter. */
  rateLimiter?: ChatRateLimiter;
  /** The user's local plugins, for the `plugins` frame; without it no such frame is sent. */
  plugins?: LocalPluginSource;
}

/** The device WebSocket of a chat instance plus the device RPC and push it makes possible. */
export interface DeviceGateway {
  /** Serves `/api/v1/ws/device`; mount without a prefix. */
  plugin: AnyElysia;
  /** Calls from this instance: straight to a local socket, or through Redis to the owning instance. */
  rpc: DeviceRpc;
  /** Frames for a user's devices wherever they are connected, in order per publisher. */
  push: DevicePush;
  connectionCount(): number;
  start(): Promise<void>;
  /** Closes every socket with 1001 and fails the calls in flight through them. */
  stop(): Promise<void>;
}

/**
 * This instance's side of the device RPC: the hub of its sockets with its RPC node, the calls it
 * makes and the frames it pushes. Built before the socket, because what handles the socket's frames
 * (the chat engine, the journey relay) calls devices through it.
 */
export interface DeviceRouting {
  hub: DeviceHub;
  rpc: DeviceRpc;
  push: DevicePush;
}

export function createDeviceRouting(platform: Platform): DeviceRouting {
  const connected = platform.metrics.gauge("device_connections", "Authenticated device sockets on this instance");
  const hub = new DeviceHub(
    platform,
    presenceFor(platform),
    rpcMetrics(platform.metrics),
    (count) => connected.set(count),
    (owner) => createRpcNode(platform, { owner }),
  );
  const { node } = hub;
  const publisher = createStreamPublisher(platform);
  const push: DevicePush = {
    async push(userId, frame, deviceId) {
      const local = hub.deliverLocal(userId, frame as ServerFrame, deviceId);
      const receivers = await publisher.push(userId, frame, deviceId);
      // This instance hears its own publish when it follows the user's stream; it already delivered.
      return local + Math.max(0, receivers - (hub.hasUser(userId) ? 1 : 0));
    },
  };
  return { hub, rpc: { call: node.call, isOnline: node.isOnline, devices: node.devices }, push };
}

/** The device socket on a device routing, with the handlers of its chat and journey frames. */
export function createDeviceGateway(platform: Platform, options: DeviceGatewayOptions = {}): DeviceGateway {
  const { env, metrics, keys, bus, logger } = platform;
  const rejected = metrics.counter("device_frames_rejected_total", "Device frames answered with an error", ["reason"]);
  const { hub, rpc, push } = options.routing ?? createDeviceRouting(platform);
  const { node } = hub;
  const plugins = options.plugins && createPluginAnnouncer(hub, options.plugins, logger);
  const socket = deviceSocket({
    platform,
    hub,
    chat: options.chat,
    journeys: options.journeys,
    plugins,
    limiter: options.rateLimiter ?? sharedChatLimiter(platform),
    rejected: (reason) => rejected.inc({ reason }),
  });
  const timers: Array<ReturnType<typeof setInterval>> = [];
  const cleanups: Array<() => Promise<void>> = [];

  return {
    plugin: socket.plugin,
    rpc,
    push,
    connectionCount: () => hub.byId.size,
    async start() {
      await node.start();
      const prefix = keys.tierChanged("");
      cleanups.push(
        await bus.psubscribe(keys.tierChangedPattern, (_message, channel) => {
          hub.deliverLocal(channel.slice(prefix.length), { type: "session", action: "refresh" });
        }),
      );
      // A signed-out (or otherwise ended) session loses its sockets too, not only its tokens.
      const stopWatching = platform.revocations.onRevoked((sessionIds) => {
        const ended = new Set(sessionIds);
        for (const connection of hub.connections()) {
          const sessionId = connection.session?.sessionId;
          if (sessionId && ended.has(sessionId)) connection.close(CloseCode.sessionEnded, "session ended");
        }
      });
      cleanups.push(async () => stopWatching());
      if (options.plugins && plugins) {
        const stopFollowing = options.plugins.onChanged((userId) => plugins.changed(userId));
        cleanups.push(async () => stopFollowing());
      }
      timers.push(
        setInterval(
          () => void hub.refreshLeases().catch((error: Error) => logger.warn({ err: error.message }, "lease refresh")),
          Math.max(100, Math.floor(env.DEVICE_LEASE_TTL_MS / 3)),
        ),
        setInterval(
          () =>
            hub.sweep(Date.now(), env.DEVICE_HEARTBEAT_S * 3000, (silent) =>
              silent.close(CloseCode.heartbeatTimeout, "no heartbeat"),
            ),
          Math.min(1000, env.DEVICE_HEARTBEAT_S * 1000),
        ),
      );
    },
    async stop() {
      for (const timer of timers.splice(0)) clearInterval(timer);
      const closing = hub.connections().map(async (connection) => {
        connection.close(CloseCode.goingAway, "going away");
        if (connection.markClosed()) await hub.release(connection);
      });
      await Promise.all(closing);
      for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => {});
      await node.stop();
    },
  };
}
