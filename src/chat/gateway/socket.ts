import type { ServerWebSocket } from "bun";
import { Elysia } from "elysia";
import {
  type ActiveTurn,
  CloseCode,
  DEVICE_FRAME_TYPES,
  DEVICE_WS_PATH,
  DeviceFrame,
  FrameError,
  type HelloFrame,
  HelloFrame as HelloSchema,
  PROTOCOL_VERSION,
  type ServerFrame,
} from "../../protocol";
import { clientIp } from "../../shared/client-ip";
import { ServiceError } from "../../shared/errors";
import type { Platform } from "../../shared/platform";
import { sanitizeText, sanitizeValue } from "../../shared/sanitizer";
import { withTimeout } from "../../shared/timeout";
import type { ChatHandlers, ChatRateLimiter, JourneyHandler } from "./chat-seam";
import { DeviceConnection } from "./connection";
import type { DeviceHub } from "./hub";
import { PendingByIp } from "./pending";
import type { PluginAnnouncer } from "./plugins-frame";

export interface SocketDeps {
  platform: Platform;
  hub: DeviceHub;
  /** Without them, `chat` frames get `chat_unavailable`. */
  chat?: ChatHandlers;
  /** Without it, journey frames get `journeys_unavailable`. */
  journeys?: JourneyHandler;
  /** Sends the `plugins` frame after `welcome`; without it none is sent. */
  plugins?: PluginAnnouncer;
  limiter: ChatRateLimiter;
  rejected: (reason: string) => void;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Longest wait for the user's running turns before `welcome` goes out without them. */
const WELCOME_TURNS_MS = 250;

/** Elysia's handlers are internal: they JSON-parse each frame before we could see its size. */
type RawData = { message?: (ws: ServerWebSocket<unknown>, message: string | Buffer) => void };

/** The `/api/v1/ws/device` endpoint: authentication, frame validation, and dispatch to hub and chat. */
export function deviceSocket(deps: SocketDeps) {
  const { env } = deps.platform;
  const sockets = new Map<string, DeviceConnection>();
  const handler = new FrameHandler(deps);
  const pending = new PendingByIp(env.DEVICE_MAX_PENDING_PER_IP, env.DEVICE_HELLO_TIMEOUT_MS + 1000);
  /** Places taken at the upgrade, handed to the socket when it opens. */
  const places = new WeakMap<Request, () => void>();
  const plugin = new Elysia({ name: "chat-device-socket" }).ws(DEVICE_WS_PATH, {
    // Before the upgrade, so an IP holding too many unwelcomed sockets gets no further socket at all.
    // (`upgrade` runs once; a `beforeHandle` here would run twice, as a route hook and by the adapter.)
    upgrade({ request, server }) {
      const release = pending.take(clientIp(request, server, env.TRUSTED_PROXY_HOPS));
      if (!release) {
        deps.rejected("too_many_pending");
        const message = "too many device sockets waiting for hello from this address";
        throw new ServiceError("too_many_pending", 429, message, { "retry-after": "1" });
      }
      places.set(request, release);
    },
    open(ws) {
      const raw = ws.raw as unknown as ServerWebSocket<unknown>;
      const connection = new DeviceConnection(raw, deps.platform.env.DEVICE_SEND_BUFFER_BYTES, (slow) => {
        deps.rejected("send_buffer_full");
        slow.close(CloseCode.tooSlow, "device reads too slowly");
        if (slow.markClosed()) void deps.hub.release(slow);
      });
      connection.releasePending = places.get(ws.data.request) ?? connection.releasePending;
      sockets.set(ws.id, connection);
      // Frames reach our handler as they arrived, so size is checked before any parsing.
      (raw.data as RawData).message = (_raw, message) => void handler.onMessage(connection, message);
      const header = ws.data.headers?.authorization;
      connection.headerToken = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1] ?? "";
      connection.helloTimer = setTimeout(
        () => handler.reject(connection, "no hello in time"),
        deps.platform.env.DEVICE_HELLO_TIMEOUT_MS,
      );
    },
    message() {
      // Replaced per connection in `open`.
    },
    drain(ws) {
      sockets.get(ws.id)?.flush();
    },
    close(ws) {
      const connection = sockets.get(ws.id);
      sockets.delete(ws.id);
      if (connection?.markClosed()) void deps.hub.release(connection);
    },
  });
  return { plugin, sockets };
}

class FrameHandler {
  constructor(private readonly deps: SocketDeps) {}

  async onMessage(connection: DeviceConnection, message: string | Buffer): Promise<void> {
    connection.lastSeen = Date.now();
    if (connection.state === "closed") return;
    const value = this.decode(connection, message);
    if (value === undefined) return;
    if (connection.state === "hello") {
      await this.hello(connection, value);
      return;
    }
    if (connection.state === "authenticating") {
      this.error(connection, FrameError.notReady, "wait for welcome before sending frames");
      return;
    }
    const type = (value as { type?: unknown }).type;
    if (typeof type !== "string" || !DEVICE_FRAME_TYPES.has(type)) {
      const what = `unknown frame type ${JSON.stringify(type)?.slice(0, 64)}`;
      this.error(connection, FrameError.unknownType, what, refOf(value));
      return;
    }
    const parsed = DeviceFrame.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
      this.error(connection, FrameError.invalidFrame, `${where}${issue?.message ?? "invalid frame"}`, refOf(value));
      return;
    }
    await this.dispatch(connection, parsed.data);
  }

  /** Size and JSON checks; undefined when the frame was answered with an error (or the socket closed). */
  private decode(connection: DeviceConnection, message: string | Buffer): unknown {
    const max = this.deps.platform.env.DEVICE_MAX_FRAME_BYTES;
    const authenticated = connection.state !== "hello";
    if (typeof message !== "string") {
      if (authenticated) this.error(connection, FrameError.binaryNotSupported, "frames are JSON text");
      else this.reject(connection, "expected a hello frame");
      return undefined;
    }
    if (message.length > max || (message.length * 3 > max && Buffer.byteLength(message) > max)) {
      if (authenticated) {
        this.error(connection, FrameError.frameTooLarge, `frames are limited to ${max} bytes`, refInHead(message));
      } else this.reject(connection, "expected a hello frame");
      return undefined;
    }
    let value: unknown;
    try {
      value = JSON.parse(message);
    } catch {
      // Malformed, or nested too deep for the parser (a RangeError): answered below either way.
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return this.sanitize(connection, value);
    if (authenticated) this.error(connection, FrameError.invalidJson, "frames are JSON objects with a type");
    else this.reject(connection, "expected a hello frame");
    return undefined;
  }

  /**
   * The shared input policy (sanitizer.ts) on a parsed frame, before any schema sees it. A refused
   * `tool_result` also fails its call at once, so the chat turn waiting on it goes on (and keeps its
   * reply) instead of waiting for the deadline.
   */
  private sanitize(connection: DeviceConnection, value: object): unknown {
    try {
      return sanitizeValue(value);
    } catch (error) {
      const { type, id, request_id } = value as { type?: unknown; id?: unknown; request_id?: unknown };
      const ref = typeof (id ?? request_id) === "string" ? sanitizeText(String(id ?? request_id)) : undefined;
      const issue =
        error instanceof ServiceError ? (error.details as Array<{ message: string }> | undefined)?.[0] : undefined;
      if (connection.state === "hello") {
        this.refuseHello(connection, issue?.message ?? "invalid hello frame");
        return undefined;
      }
      this.error(connection, FrameError.invalidFrame, issue?.message ?? "invalid frame", ref);
      if (type === "tool_result" && ref) {
        const failure = { code: "invalid_result", message: "the device sent a result the server refused" };
        this.deps.hub.onResult(connection, { type: "tool_result", id: ref, ok: false, error: failure });
      }
      return undefined;
    }
  }

  private async dispatch(connection: DeviceConnection, frame: DeviceFrame): Promise<void> {
    const { hub } = this.deps;
    switch (frame.type) {
      case "tool_result":
        hub.onResult(connection, frame);
        return;
      case "tool_progress":
        hub.onProgress(connection, frame);
        return;
      case "ping":
        connection.send({ type: "pong" });
        return;
      case "token":
        await this.renew(connection, frame.token);
        return;
      case "hello":
        this.error(connection, FrameError.alreadyAuthenticated, "hello was already accepted");
        return;
      case "chat":
      case "chat_cancel":
      case "chat_resume":
        await this.chat(connection, frame);
        return;
      case "journey_start":
      case "journey_message":
        await this.journey(connection, frame);
        return;
    }
  }

  private async hello(connection: DeviceConnection, value: unknown): Promise<void> {
    if ((value as { type?: unknown }).type !== "hello") return this.reject(connection, "expected a hello frame");
    const parsed = HelloSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.refuseHello(connection, `${issue?.path.join(".") || "hello"}: ${issue?.message ?? "invalid"}`);
    }
    const hello: HelloFrame = parsed.data;
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.error(connection, FrameError.unsupportedProtocol, `this server speaks protocol ${PROTOCOL_VERSION}`);
      connection.close(CloseCode.unsupportedProtocol, "unsupported protocol");
      return;
    }
    const token = hello.token ?? connection.headerToken;
    if (!token) return this.reject(connection, "missing token");
    connection.state = "authenticating";
    const user = await this.deps.platform.verifier.verify(token).catch(() => undefined);
    if (connection.state !== "authenticating") return;
    if (!user) return this.reject(connection, "invalid or expired token");
    clearTimeout(connection.helloTimer);
    connection.session = {
      connectionId: connection.id,
      userId: user.userId,
      tier: user.tier,
      sessionId: user.sessionId,
      deviceId: hello.device_id,
      deviceName: hello.device_name,
      tools: [...new Set(hello.tools)],
      signal: connection.aborter.signal,
    };
    this.armExpiry(connection, user.expiresAt);
    connection.state = "open";
    const admission = await this.deps.hub.admit(connection);
    if (connection.state !== "open") return;
    if (admission === "full") {
      const max = this.deps.hub.maxDevices(user.tier);
      this.error(connection, FrameError.deviceLimitReached, `this plan allows ${max} devices connected at once`);
      connection.close(CloseCode.tooManyDevices, "too many devices");
      connection.markClosed();
      return;
    }
    if (admission === "superseded") {
      connection.close(CloseCode.replaced, "replaced by a newer connection");
      connection.markClosed();
      return;
    }
    connection.releasePending();
    const activeTurns = await this.activeTurns(connection);
    if (connection.state !== "open") return;
    connection.send({
      type: "welcome",
      connection_id: connection.id,
      heartbeat_s: this.deps.platform.env.DEVICE_HEARTBEAT_S,
      protocol: PROTOCOL_VERSION,
      active_turns: activeTurns,
    });
    this.deps.plugins?.welcomed(connection);
  }

  /**
   * The user's running turns for `welcome`, within a bound: a slow turn log delays no welcome by
   * more than WELCOME_TURNS_MS (the list is then empty, and the app's own resumes still work).
   */
  private async activeTurns(connection: DeviceConnection): Promise<ActiveTurn[]> {
    const list = this.deps.chat?.activeTurns;
    if (!list) return [];
    try {
      return await withTimeout(list(connection.session!), WELCOME_TURNS_MS, "active turns");
    } catch (error) {
      this.deps.platform.logger.warn({ err: (error as Error).message }, "welcome sent without active turns");
      return [];
    }
  }

  /** A fresh token on the open socket; it must belong to the same user. */
  private async renew(connection: DeviceConnection, token: string): Promise<void> {
    const session = connection.session!;
    const user = await this.deps.platform.verifier.verify(token).catch(() => undefined);
    if (!user) {
      this.error(connection, FrameError.tokenInvalid, "the new token was refused; the current one still applies");
      return;
    }
    if (user.userId !== session.userId) {
      this.reject(connection, "token belongs to another user");
      return;
    }
    const previousTier = session.tier;
    session.tier = user.tier;
    session.sessionId = user.sessionId;
    this.armExpiry(connection, user.expiresAt);
    // Which local plugins the user may use depends on the tier: the device gets the list for the new one.
    if (user.tier !== previousTier) this.deps.plugins?.tierChanged(connection);
  }

  private async chat(
    connection: DeviceConnection,
    frame: Extract<DeviceFrame, { type: "chat" | "chat_cancel" | "chat_resume" }>,
  ) {
    const session = connection.session!;
    const send = (out: ServerFrame) => connection.send(out);
    const handlers = this.deps.chat;
    try {
      if (frame.type === "chat_cancel") {
        if (handlers?.onChatCancel) await handlers.onChatCancel(session, frame, send);
        return;
      }
      if (frame.type === "chat_resume") {
        // Counted like a chat frame: a reconnect resumes a handful of turns, a loop of resumes is refused.
        if (!(await this.withinRate(connection, frame.request_id))) return;
        if (handlers?.onChatResume) await handlers.onChatResume(session, frame, send);
        else
          this.error(connection, FrameError.notResumable, "turns cannot be resumed on this server", frame.request_id);
        return;
      }
      if (!(await this.withinRate(connection, frame.request_id))) return;
      if (!handlers) {
        this.error(connection, FrameError.chatUnavailable, "chat is not available on this server", frame.request_id);
        return;
      }
      await handlers.onChat(session, frame, send);
    } catch (error) {
      this.deps.platform.logger.error({ err: error, user: session.userId }, "chat handler failed");
      this.error(connection, FrameError.internal, "the request failed", frame.request_id);
    }
  }

  private async journey(
    connection: DeviceConnection,
    frame: Extract<DeviceFrame, { type: "journey_start" | "journey_message" }>,
  ) {
    const session = connection.session!;
    try {
      if (!(await this.withinRate(connection, frame.request_id))) return;
      const handler = this.deps.journeys;
      if (!handler) {
        this.error(
          connection,
          FrameError.journeysUnavailable,
          "setup journeys are not available on this server",
          frame.request_id,
        );
        return;
      }
      await handler.onJourney(session, frame, (out) => connection.send(out));
    } catch (error) {
      this.deps.platform.logger.error({ err: error, user: session.userId }, "journey handler failed");
      this.error(connection, FrameError.internal, "the request failed", frame.request_id);
    }
  }

  /** The tier's requests/min, one budget for chat and journey frames; false when refused (and answered). */
  private async withinRate(connection: DeviceConnection, requestId: string): Promise<boolean> {
    const session = connection.session!;
    const verdict = await this.deps.limiter.allowChat(session.userId, session.tier).catch((error: Error) => {
      // A limiter outage must not take chat down with it.
      this.deps.platform.logger.warn({ err: error.message }, "chat rate limit unavailable");
      return { allowed: true, retryAfterMs: 0 };
    });
    if (verdict.allowed) return true;
    connection.send({
      type: "error",
      code: FrameError.rateLimited,
      message: "too many requests for this plan, retry later",
      ref: requestId,
      retry_after_ms: verdict.retryAfterMs,
    });
    return false;
  }

  private armExpiry(connection: DeviceConnection, expiresAtS: number): void {
    clearTimeout(connection.expiryTimer);
    connection.tokenExpiresAt = expiresAtS;
    const left = expiresAtS * 1000 - Date.now();
    // Timers past 2^31-1 ms (24.8 days) fire at once: a long-lived token re-arms instead.
    connection.expiryTimer =
      left > MAX_TIMER_MS
        ? setTimeout(() => this.armExpiry(connection, expiresAtS), MAX_TIMER_MS)
        : setTimeout(() => connection.close(CloseCode.tokenExpired, "token expired"), Math.max(0, left));
  }

  /** A hello out of bounds or malformed: the field and why, then close 4400 (the SDK does not retry it). */
  private refuseHello(connection: DeviceConnection, why: string): void {
    this.error(connection, FrameError.invalidHello, why);
    connection.close(CloseCode.invalidHello, "invalid hello");
    connection.markClosed();
  }

  reject(connection: DeviceConnection, reason: string): void {
    this.deps.rejected("unauthorized");
    connection.close(CloseCode.unauthorized, reason);
  }

  private error(connection: DeviceConnection, code: FrameError, message: string, ref?: unknown): void {
    this.deps.rejected(code);
    const frame: ServerFrame = { type: "error", code, message };
    if (typeof ref === "string") frame.ref = ref;
    connection.send(frame);
  }
}

/** The `id` (tool frames) or `request_id` (requests) of a frame, for the `ref` of its error frame. */
function refOf(value: unknown): string | undefined {
  const { id, request_id } = value as { id?: unknown; request_id?: unknown };
  const ref = typeof request_id === "string" ? request_id : id;
  return typeof ref === "string" && ref.length <= 128 ? ref : undefined;
}

/**
 * The `id` or `request_id` of a frame too large to parse, read from its first kilobyte, where the
 * SDK (and any client writing `type` and the ids first) puts it: enough for `ref`, no parse.
 */
function refInHead(message: string): string | undefined {
  const head = message.slice(0, 1024);
  const match = /"request_id"\s*:\s*"([^"\\]{1,128})"/.exec(head) ?? /"id"\s*:\s*"([^"\\]{1,128})"/.exec(head);
  return match?.[1];
}
