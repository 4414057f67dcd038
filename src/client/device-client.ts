import type { ServerFrame } from "../chat/gateway/model";
import { ChatStream, requestError } from "./chat-stream";

/** Protocol spoken by this SDK (the server's `PROTOCOL_VERSION`). */
export const DEVICE_PROTOCOL = 1;
/**
 * Reconnecting would not help: the session ended (the user must sign in again; the app calls
 * `connect()` after), another connection with this device id replaced this one (two clients with
 * one id would otherwise take turns replacing each other), the user already has as many devices
 * connected as the plan allows (the app says so and calls `connect()` when the user asks), a
 * `hello` the server refuses (out of bounds), or an unsupported protocol.
 */
const FINAL_CLOSE_CODES = new Set([4400, 4403, 4409, 4426, 4429]);

export type Welcome = Extract<ServerFrame, { type: "welcome" }>;
export type ChatChunk = Extract<ServerFrame, { type: "chat_chunk" }>;
export type ChatDone = Extract<ServerFrame, { type: "chat_done" }>;
export type ErrorFrame = Extract<ServerFrame, { type: "error" }>;
export type JourneyFrame = Extract<ServerFrame, { type: "journey" }>;

export interface ToolContext {
  id: string;
  /** Who asks, e.g. "chat" or "agent:<run id>". */
  origin: string;
  deadlineMs: number;
  /** Aborted when the server cancels the call (deadline, caller gave up) or the socket drops. */
  signal: AbortSignal;
  /** Reports progress; each report also extends the call's deadline on the server. */
  progress(progress: number, total?: number, message?: string): void;
}

export type ToolHandler = (args: unknown, context: ToolContext) => unknown;

/** Throw from a tool handler to answer with a specific error code. */
export class ToolFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface DeviceClientOptions {
  /** `ws(s)://host/api/v1/ws/device`; a function is asked again before every reconnect. */
  url: string | (() => string);
  /**
   * A current access token; called for every connection and every renewal. `stale` is true when
   * the server said the session changed (e.g. a new tier): a cached token must be refreshed first.
   */
  token: (request: { stale: boolean }) => string | Promise<string>;
  deviceId: string;
  deviceName?: string;
  tools?: Record<string, ToolHandler>;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Renew the token on the open socket this long before it expires (default: 60 s, at most a third of its life). */
  renewBeforeMs?: number;
  WebSocket?: typeof WebSocket;
}

export interface DeviceClientEvents {
  welcome: Welcome;
  chat_chunk: ChatChunk;
  chat_done: ChatDone;
  agent_event: Extract<ServerFrame, { type: "agent_event" }>;
  journey: JourneyFrame;
  session: Extract<ServerFrame, { type: "session" }>;
  error: ErrorFrame;
  close: { code: number; reason: string; willReconnect: boolean };
}

type Listener<T> = (event: T) => void;

/** A connection closed before `welcome`. */
export class DeviceConnectError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`device connection closed (${code}${reason ? `: ${reason}` : ""})`);
  }
}

/**
 * The device side of the gateway for the Electron app: one socket, `hello`, heartbeats, token
 * renewal on the open socket, tool handlers with progress and cancellation, chat streams, and
 * reconnection with exponential backoff and jitter once a first connection succeeded.
 */
export class DeviceClient {
  status: "idle" | "connecting" | "open" | "closed" = "idle";
  connectionId?: string;
  private socket?: WebSocket;
  private attempt = 0;
  private stopped = false;
  private everConnected = false;
  private readonly listeners = new Map<string, Set<Listener<never>>>();
  private readonly running = new Map<string, ToolRun>();
  private timers: { heartbeat?: ReturnType<typeof setInterval>; renew?: ReturnType<typeof setTimeout> } = {};
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private lastHeard = 0;

  constructor(private readonly options: DeviceClientOptions) {}

  /** Resolves with the first `welcome`; rejects if that first connection closes before it. */
  connect(): Promise<Welcome> {
    this.stopped = false;
    return new Promise((resolve, reject) => {
      const offWelcome = this.on("welcome", (welcome) => {
        offWelcome();
        offClose();
        resolve(welcome);
      });
      const offClose = this.on("close", ({ code, reason }) => {
        if (this.everConnected) return;
        offWelcome();
        offClose();
        reject(new DeviceConnectError(code, reason));
      });
      void this.open();
    });
  }

  on<K extends keyof DeviceClientEvents>(type: K, listener: Listener<DeviceClientEvents[K]>): () => void {
    const set = this.listeners.get(type) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(type, set);
    return () => set.delete(listener as Listener<never>);
  }

  /** Starts a chat turn; chunks and the final frame arrive on the returned stream. */
  chat(input: {
    text: string;
    surface?: "home" | "floating";
    chatId?: string;
    requestId?: string;
    /** What the user is looking at (floating chat): app, window_title, url, selection, item. */
    context?: Record<string, unknown>;
  }): ChatStream {
    const requestId = input.requestId ?? crypto.randomUUID();
    const stream = new ChatStream(requestId, this);
    this.send({
      type: "chat",
      request_id: requestId,
      chat_id: input.chatId,
      surface: input.surface ?? "home",
      text: input.text,
      context: input.context,
    });
    return stream;
  }

  cancelChat(requestId: string): void {
    this.send({ type: "chat_cancel", request_id: requestId });
  }

  /**
   * Starts a setup journey for an agent type of the catalog. Resolves with the `journey` frame (the
   * assistant's first question and the empty draft); rejects like a chat, with the `error` frame's
   * `code` (e.g. `tier_insufficient`, `config_limit_reached`, `rate_limited`, `agent_unavailable`).
   */
  startJourney(agentType: string, options: { requestId?: string } = {}): Promise<JourneyFrame> {
    return this.journeyRequest({ type: "journey_start", agent_type: agentType }, options.requestId);
  }

  /** Answers the journey's question, or confirms its configuration (`confirm: true`, `text` optional). */
  sendJourneyMessage(
    journeyId: string,
    text: string | undefined,
    options: { confirm?: boolean; requestId?: string } = {},
  ): Promise<JourneyFrame> {
    return this.journeyRequest(
      { type: "journey_message", journey_id: journeyId, text, confirm: options.confirm },
      options.requestId,
    );
  }

  /**
   * Sends a fresh token on the open socket; done on its own before expiry, and when the server
   * sends `session {action: "refresh"}` (then with `stale: true`).
   */
  async renewToken(request = { stale: false }): Promise<void> {
    const token = await this.options.token(request);
    this.send({ type: "token", token });
    this.scheduleRenewal(token);
  }

  /** Sends a raw frame; false when not connected. */
  send(frame: { type: string } & Record<string, unknown>): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.socket?.close(1000, "closed by the device");
    this.cleanup();
    this.status = "closed";
  }

  /** One journey frame and its answer, matched by request id; the socket closing first rejects. */
  private journeyRequest(
    frame: { type: string } & Record<string, unknown>,
    requestId: string = crypto.randomUUID(),
  ): Promise<JourneyFrame> {
    return new Promise((resolve, reject) => {
      const offs = [
        this.on("journey", (answer) => {
          if (answer.request_id !== requestId) return;
          finish();
          resolve(answer);
        }),
        this.on("error", (error) => {
          if (error.ref !== requestId) return;
          finish();
          reject(requestError(error));
        }),
        this.on("close", () => {
          finish();
          reject(new Error("the connection closed before the journey answered"));
        }),
      ];
      const finish = () => {
        for (const off of offs) off();
      };
      if (!this.send({ ...frame, request_id: requestId })) {
        finish();
        reject(new Error("the device is not connected"));
      }
    });
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    this.status = "connecting";
    let token: string;
    try {
      token = await this.options.token({ stale: false });
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    const url = typeof this.options.url === "function" ? this.options.url() : this.options.url;
    const Impl = this.options.WebSocket ?? WebSocket;
    const socket = new Impl(url);
    this.socket = socket;
    socket.onopen = () => {
      socket.send(
        JSON.stringify({
          type: "hello",
          token,
          device_id: this.options.deviceId,
          device_name: this.options.deviceName,
          tools: Object.keys(this.options.tools ?? {}),
          protocol: DEVICE_PROTOCOL,
        }),
      );
      this.scheduleRenewal(token);
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      this.handle(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.cleanup();
      const willReconnect = !this.stopped && this.everConnected && !FINAL_CLOSE_CODES.has(event.code);
      this.status = willReconnect ? "connecting" : "closed";
      this.emit("close", { code: event.code, reason: event.reason, willReconnect });
      if (willReconnect) this.scheduleReconnect();
    };
    socket.onerror = () => {
      // onclose follows and decides
    };
  }

  private handle(frame: ServerFrame): void {
    switch (frame.type) {
      case "welcome":
        this.status = "open";
        this.connectionId = frame.connection_id;
        this.attempt = 0;
        this.everConnected = true;
        this.startHeartbeat(frame.heartbeat_s);
        this.emit("welcome", frame);
        return;
      case "tool_call":
        void this.runTool(frame);
        return;
      case "tool_cancel":
        this.running.get(frame.id)?.abort(new ToolFailure("cancelled", frame.reason));
        this.running.delete(frame.id);
        return;
      case "pong":
        return;
      case "session":
        void this.renewToken({ stale: true }).catch(() => {});
        this.emit("session", frame);
        return;
      default:
        this.emit(frame.type, frame as never);
    }
  }

  private async runTool(call: Extract<ServerFrame, { type: "tool_call" }>): Promise<void> {
    const socket = this.socket;
    const handler = this.options.tools?.[call.name];
    if (!handler) {
      this.send({
        type: "tool_result",
        id: call.id,
        ok: false,
        error: { code: "tool_not_supported", message: `no handler for ${call.name}` },
      });
      return;
    }
    const run = new ToolRun();
    this.running.set(call.id, run);
    const context: ToolContext = {
      id: call.id,
      origin: call.origin,
      deadlineMs: call.deadline_ms,
      get signal() {
        return run.signal;
      },
      progress: (progress, total, message) => {
        if (!run.aborted) this.send({ type: "tool_progress", id: call.id, progress, total, message });
      },
    };
    let frame: { type: "tool_result" } & Record<string, unknown>;
    try {
      frame = { type: "tool_result", id: call.id, ok: true, result: (await handler(call.args, context)) ?? null };
    } catch (error) {
      const code = error instanceof ToolFailure ? error.code : "tool_failed";
      frame = { type: "tool_result", id: call.id, ok: false, error: { code, message: (error as Error).message } };
    }
    this.running.delete(call.id);
    // A cancelled call, or one from a socket that has since dropped, has nobody waiting.
    if (!run.aborted && this.socket === socket) this.send(frame);
  }

  private startHeartbeat(heartbeatS: number): void {
    clearInterval(this.timers.heartbeat);
    this.lastHeard = Date.now();
    this.timers.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > heartbeatS * 3000) {
        this.socket?.close(4000, "server silent");
        return;
      }
      this.send({ type: "ping" });
    }, heartbeatS * 1000);
  }

  private scheduleRenewal(token: string): void {
    clearTimeout(this.timers.renew);
    const claims = decodeClaims(token);
    if (!claims?.exp) return;
    const lifetime = claims.exp * 1000 - (claims.iat ? claims.iat * 1000 : Date.now());
    const before = this.options.renewBeforeMs ?? Math.min(60_000, lifetime / 3);
    const due = Math.max(1000, claims.exp * 1000 - before - Date.now());
    this.timers.renew = setTimeout(() => void this.renewToken().catch(() => {}), due);
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const initial = this.options.backoff?.initialMs ?? 500;
    const max = this.options.backoff?.maxMs ?? 30_000;
    const ceiling = Math.min(max, initial * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter spreads a fleet of devices reconnecting after the same outage.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private cleanup(): void {
    clearInterval(this.timers.heartbeat);
    clearTimeout(this.timers.renew);
    this.timers = {};
    for (const run of this.running.values()) run.abort(new ToolFailure("disconnected", "socket closed"));
    this.running.clear();
  }

  private emit(type: string, event: unknown): void {
    for (const listener of this.listeners.get(type) ?? []) (listener as Listener<unknown>)(event);
  }
}

/**
 * A running tool call. Its AbortController is made only when the handler reads `signal`: one per
 * call was a visible share of the device's CPU when calls come in thousands.
 */
class ToolRun {
  private controller?: AbortController;
  private reason?: ToolFailure;

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: ToolFailure): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

function decodeClaims(token: string): { exp?: number; iat?: number } | undefined {
  try {
    const payload = token.split(".")[1] ?? "";
    return JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { exp?: number; iat?: number };
  } catch {
    return undefined;
  }
}
