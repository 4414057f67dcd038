import type { AnyElysia } from "elysia";
import type { DevicePush, DeviceRpc } from "../../shared/device-rpc";
import { rpcMetrics } from "../../shared/device-rpc/metrics";
import { createRpcNode } from "../../shared/device-rpc/node";
import { createStreamPublisher } from "../../shared/device-rpc/push";
import type { Platform } from "../../shared/platform";
import { presenceFor } from "../../shared/presence";
import { type ChatHandlers, type ChatRateLimiter, type JourneyHandler, sharedChatLimiter } from "./chat-seam";
import { DeviceHub } from "./hub";
import { CloseCode, type ServerFrame } from "./model";
import { deviceSocket } from "./socket";

export interface DeviceGatewayOptions {
  chat?: ChatHandlers;
  /** Where journey frames go (the relay to the agent service). */
  journeys?: JourneyHandler;
  /** The per-tier requests/min check for `chat` frames; defaults to the platform's shared limiter. */
  rateLimiter?: ChatRateLimiter;
}

/** The device WebSocket of a chat instance plus the device RPC and push it makes possible. */
export interface DeviceGateway {
  /** Serves `/api/v1/ws/device`; mount without a prefix. */
  plugin: AnyElysia;
  /** Calls from this instance: straight to a local socket, or through Redis to the owning instance. */
  rpc: DeviceRpc;
  /** Frames for a user's devices wherever they are connected, in order per publisher. */
  push: DevicePush;
  /** For a chat engine built after the gateway (it needs `rpc`). */
  useChat(handlers: ChatHandlers): void;
  useJourneys(handler: JourneyHandler): void;
  useRateLimiter(limiter: ChatRateLimiter): void;
  connectionCount(): number;
  start(): Promise<void>;
  /** Closes every socket with 1001 and fails the calls in flight through them. */
  stop(): Promise<void>;
}

export function createDeviceGateway(platform: Platform, options: DeviceGatewayOptions = {}): DeviceGateway {
  const { env, metrics, keys, bus, logger } = platform;
  const connected = metrics.gauge("device_connections", "Authenticated device sockets on this instance");
  const rejected = metrics.counter("device_frames_rejected_total", "Device frames answered with an error", ["reason"]);
  let chat = options.chat;
  let journeys = options.journeys;
  let limiter = options.rateLimiter ?? sharedChatLimiter(platform);
  const hub = new DeviceHub(platform, presenceFor(platform), rpcMetrics(metrics), (count) => connected.set(count));
  const node = createRpcNode(platform, { owner: hub });
  hub.node = node;
  const publisher = createStreamPublisher(platform);
  const socket = deviceSocket({
    platform,
    hub,
    chat: () => chat,
    journeys: () => journeys,
    limiter: () => limiter,
    rejected: (reason) => rejected.inc({ reason }),
  });
  const timers: Array<ReturnType<typeof setInterval>> = [];
  const cleanups: Array<() => Promise<void>> = [];

  const push: DevicePush = {
    async push(userId, frame, deviceId) {
      const local = hub.deliverLocal(userId, frame as ServerFrame, deviceId);
      const receivers = await publisher.push(userId, frame, deviceId);
      // This instance hears its own publish when it follows the user's stream; it already delivered.
      return local + Math.max(0, receivers - (hub.hasUser(userId) ? 1 : 0));
    },
  };

  return {
    plugin: socket.plugin,
    rpc: { call: node.call, isOnline: node.isOnline, devices: node.devices },
    push,
    useChat: (handlers) => {
      chat = handlers;
    },
    useJourneys: (handler) => {
      journeys = handler;
    },
    useRateLimiter: (next) => {
      limiter = next;
    },
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
