import {
  type ChatChunk,
  type ChatDone,
  ChatStream,
  connectionClosed,
  DeviceRequestError,
  notConnected,
  requestError,
} from "./chat-stream";
import {
  type ActiveTurn,
  CloseCode,
  CONNECTION_FAILED,
  DEVICE_PROTOCOL,
  type ErrorFrame,
  type JourneyFrame,
  type PluginsFrame,
  type ServerFrame,
} from "./protocol";

/**
 * Reconnecting would not help: the session ended (the user must sign in again; the app calls
 * `connect()` after), another connection with this device id replaced this one (two clients with
 * one id would otherwise take turns replacing each other), the user already has as many devices
 * connected as the plan allows (the app says so and calls `connect()` when the user asks), a
 * `hello` the server refuses (out of bounds), or an unsupported protocol.
 */
const FINAL_CLOSE_CODES = new Set<number>([
  CloseCode.invalidHello,
  CloseCode.sessionEnded,
  CloseCode.replaced,
  CloseCode.unsupportedProtocol,
  CloseCode.tooManyDevices,
]);

export type Welcome = Extract<ServerFrame, { type: "welcome" }>;
export type AgentEvent = Extract<ServerFrame, { type: "agent_event" }>;

/**
 * What the SDK needs of a WebSocket: the WHATWG one (browsers, Bun, Node 22+) and the `ws`
 * package's class both fit. Handlers take `never` so either's event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;
/** How long an `error` may go without its `close` before the attempt counts as failed anyway. */
const ERROR_CLOSE_GRACE_MS = 250;

export interface ToolContext {
  id: string;
  /** Who asks: "chat", "agent:<run id>", or "plugin:<slug>" (a remote plugin the user granted the tool). */
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
  /** One connection attempt (socket, `hello`, `welcome`) fails after this long (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * The WebSocket class: the global one by default; Node 20 has none, so pass the `ws` package's
   * (`import WebSocket from "ws"`).
   */
  WebSocket?: WebSocketConstructor;
  /** Errors thrown by the app's own listeners and handlers' results that cannot be sent (default: console.error). */
  onError?: (error: unknown) => void;
}

export interface DeviceClientEvents {
  welcome: Welcome;
  /**
   * After every `welcome`: the user's turns still running (on any device or instance) that no
   * ChatStream of this client follows; possibly none. `resumeChat` attaches to one.
   */
  active_turns: ActiveTurn[];
  chat_chunk: ChatChunk;
  chat_done: ChatDone;
  agent_event: AgentEvent;
  journey: JourneyFrame;
  session: Extract<ServerFrame, { type: "session" }>;
  /**
   * The user's installed local plugins, the whole list, after `welcome` and whenever it changes.
   * None comes while the plugins service is unreachable: keep the list from the last one (the
   * server sends it once the service answers again).
   */
  plugins: PluginsFrame;
  error: ErrorFrame;
  close: { code: number; reason: string; willReconnect: boolean };
}

type Listener<T> = (event: T) => void;

/** A chat turn a ChatStream of this client follows, across reconnects, until it ends. */
interface FollowedTurn {
  stream: ChatStream;
  /** `chat_resume` was sent for it: its errors answer the resume, not the turn's start. */
  resumed: boolean;
  /** `cancelChat` was called while the socket was down: sent once reconnected. */
  cancelPending: boolean;
  /** A resume the server rate-limited, sent again after its hint. */
  retryTimer?: ReturnType<typeof setTimeout>;
}

/** `connect()` failed: the first connection closed before `welcome` (1006: it never got that far). */
export class DeviceConnectError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`device connection closed (${code}${reason ? `: ${reason}` : ""})`);
    this.name = "DeviceConnectError";
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
  private socket?: WebSocketLike;
  /** Ends the current attempt or connection once, whichever of close, error or timeout comes first. */
  private settleSocket?: (code: number, reason: string) => void;
  private attempt = 0;
  private stopped = false;
  private everConnected = false;
  private welcome?: Welcome;
  private readonly Impl: WebSocketConstructor;
  private readonly listeners = new Map<string, Set<Listener<never>>>();
  private readonly running = new Map<string, ToolRun>();
  /** Chat turns by request id, resumed after each reconnect and failed when the client stops for good. */
  private readonly followed = new Map<string, FollowedTurn>();
  private timers: { heartbeat?: ReturnType<typeof setInterval>; renew?: ReturnType<typeof setTimeout> } = {};
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private lastHeard = 0;

  constructor(private readonly options: DeviceClientOptions) {
    const Impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Impl) throw new TypeError("no global WebSocket here: pass one as the WebSocket option (the `ws` package)");
    this.Impl = Impl;
  }

  /** Resolves with the first `welcome`; rejects if that first connection closes before it. */
  connect(): Promise<Welcome> {
    this.stopped = false;
    if (this.status === "open" && this.welcome) return Promise.resolve(this.welcome);
    return new Promise((resolve, reject) => {
      const offWelcome = this.on("welcome", (welcome) => {
        offWelcome();
        offClose();
        resolve(welcome);
      });
      const offClose = this.on("close", ({ code, reason, willReconnect }) => {
        if (willReconnect) return;
        offWelcome();
        offClose();
        reject(new DeviceConnectError(code, reason));
      });
      if (this.status !== "connecting") void this.open();
    });
  }

  on<K extends keyof DeviceClientEvents>(type: K, listener: Listener<DeviceClientEvents[K]>): () => void {
    const set = this.listeners.get(type) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(type, set);
    return () => set.delete(listener as Listener<never>);
  }

  /**
   * Starts a chat turn; chunks and the final frame arrive on the returned stream. Its `done` rejects
   * at once with `not_connected` when the socket is not open (the turn was not sent). The turn
   * outlives the socket: after a reconnect the stream resumes it where it was; `done` rejects with
   * `connection_closed` only when the client stops for good (`close()`, a final close code).
   */
  chat(input: {
    text: string;
    surface?: "home" | "floating";
    chatId?: string;
    requestId?: string;
    /** What the user is looking at (floating chat): app, window_title, url, selection, item. */
    context?: Record<string, unknown>;
  }): ChatStream {
    const requestId = input.requestId ?? randomId();
    if (this.followed.has(requestId)) return failedStream(requestId, duplicateRequest(requestId));
    if (this.status !== "open") return failedStream(requestId, notConnected());
    const stream = this.follow(requestId, { chatId: input.chatId });
    const sent = this.send({
      type: "chat",
      request_id: requestId,
      chat_id: input.chatId,
      surface: input.surface ?? "home",
      text: input.text,
      context: input.context,
    });
    if (!sent) stream.fail(notConnected());
    return stream;
  }

  /**
   * Follows a turn already running: one of `active_turns` (started by another device, or by this
   * app before it restarted), or one whose stream failed. The stream yields the chunks after
   * `afterSeq` (default -1: all of them) and the final frame, like `chat()`'s. Sent at once when
   * connected, else with the next `welcome` while the client is connecting; `done` rejects with
   * `not_connected` when the client is idle or closed, and with `not_resumable` when the server no
   * longer has the turn. A turn this client already follows gets its existing stream back.
   */
  resumeChat(requestId: string, options: { afterSeq?: number; chatId?: string } = {}): ChatStream {
    const existing = this.followed.get(requestId);
    if (existing) return existing.stream;
    if (this.status !== "open" && this.status !== "connecting") return failedStream(requestId, notConnected());
    const stream = this.follow(requestId, { afterSeq: options.afterSeq, chatId: options.chatId });
    if (this.status === "open") this.sendResume(requestId);
    return stream;
  }

  /**
   * Stops a chat turn wherever it runs; its stream then ends with `finish_reason: "stopped"`. True
   * when sent, or, for a turn a stream of this client follows, held while the socket is down and
   * sent once reconnected; false otherwise.
   */
  cancelChat(requestId: string): boolean {
    if (this.send({ type: "chat_cancel", request_id: requestId })) return true;
    const turn = this.followed.get(requestId);
    if (!turn) return false;
    turn.cancelPending = true;
    return true;
  }

  /**
   * Starts a setup journey for an agent type of the catalog. Resolves with the `journey` frame (the
   * assistant's first question and the empty draft); rejects with a DeviceRequestError: the `error`
   * frame's `code` (e.g. `tier_insufficient`, `config_limit_reached`, `rate_limited`,
   * `agent_unavailable`), or `not_connected` / `connection_closed`.
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
   * sends `session {action: "refresh"}` (then with `stale: true`). Rejects with `not_connected`
   * when the socket is not open (the next connection's `hello` carries a fresh token anyway).
   */
  async renewToken(request = { stale: false }): Promise<void> {
    if (this.status !== "open") throw notConnected();
    const token = await this.options.token(request);
    if (!this.send({ type: "token", token })) throw notConnected();
    this.scheduleRenewal(token);
  }

  /** Sends a raw frame on the welcomed socket; false when not connected. */
  send(frame: { type: string } & Record<string, unknown>): boolean {
    return this.sendText(() => JSON.stringify(frame));
  }

  /** Sends the text `encode` makes on the welcomed socket; false when not connected or it throws. */
  private sendText(encode: () => string): boolean {
    const socket = this.socket;
    if (this.status !== "open" || socket?.readyState !== OPEN) return false;
    try {
      socket.send(encode());
      return true;
    } catch (error) {
      // A socket closing under us (its close event follows), or a frame that is not JSON.
      this.report(error);
      return false;
    }
  }

  /** Closes the socket for good: pending requests reject with `connection_closed`, no reconnect. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    if (socket) closeQuietly(socket, 1000, "closed by the device");
    if (this.settleSocket) this.settleSocket(1000, "closed by the device");
    else if (this.status === "connecting") this.ended(1000, "closed by the device");
    this.cleanup();
    this.status = "closed";
  }

  /** One journey frame and its answer, matched by request id; the socket closing first rejects. */
  private journeyRequest(
    frame: { type: string } & Record<string, unknown>,
    requestId: string = randomId(),
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
          reject(connectionClosed());
        }),
      ];
      const finish = () => {
        for (const off of offs) off();
      };
      if (!this.send({ ...frame, request_id: requestId })) {
        finish();
        reject(notConnected());
      }
    });
  }

  /** Registers a stream for a turn: frames reach it by request id until it ends. */
  private follow(requestId: string, options: { afterSeq?: number; chatId?: string }): ChatStream {
    const turn: FollowedTurn = {
      stream: new ChatStream(requestId, {
        ...options,
        onEnd: () => {
          clearTimeout(turn.retryTimer);
          this.followed.delete(requestId);
        },
      }),
      resumed: false,
      cancelPending: false,
    };
    this.followed.set(requestId, turn);
    return turn.stream;
  }

  /** Asks the server for the chunks of a followed turn after the last one its stream took in. */
  private sendResume(requestId: string): void {
    const turn = this.followed.get(requestId);
    if (!turn) return;
    clearTimeout(turn.retryTimer);
    turn.resumed = true;
    this.send({ type: "chat_resume", request_id: requestId, after_seq: turn.stream.lastSeq });
  }

  /**
   * On a new connection, every followed turn is resumed from its stream's last chunk. A cancel
   * asked for while down goes after its resume, so the stream still gets the final frame.
   */
  private resumeFollowedTurns(): void {
    for (const [requestId, turn] of this.followed) {
      this.sendResume(requestId);
      if (turn.cancelPending && this.send({ type: "chat_cancel", request_id: requestId })) turn.cancelPending = false;
    }
  }

  /** The running turns of `welcome` that no stream follows: the app may attach to them. */
  private unfollowedTurns(welcome: Welcome): ActiveTurn[] {
    // A server older than resumable turns sends no active_turns.
    return (welcome.active_turns ?? []).filter((turn) => !this.followed.has(turn.request_id));
  }

  /** Routes a turn's frame to the stream following it; `error` frames of other requests pass by. */
  private routeChatFrame(frame: ChatChunk | ChatDone | ErrorFrame): void {
    if (frame.type === "error") {
      const requestId = frame.ref ?? "";
      const turn = this.followed.get(requestId);
      if (!turn) return;
      if (turn.resumed && this.retryResume(requestId, turn, frame)) return;
      turn.stream.fail(requestError(frame));
      return;
    }
    const stream = this.followed.get(frame.request_id)?.stream;
    if (frame.type === "chat_chunk") stream?.push(frame);
    else stream?.complete(frame);
  }

  /**
   * A resume refused for a while rather than for good is tried again, the turn still running on
   * the server: after the reconnect that follows a server shutting down, after the hint of a rate
   * limit (a reconnect resumes every followed turn at once). False when the refusal is final.
   */
  private retryResume(requestId: string, turn: FollowedTurn, error: ErrorFrame): boolean {
    if (error.code === "server_restarting") return true;
    if (error.code !== "rate_limited") return false;
    clearTimeout(turn.retryTimer);
    turn.retryTimer = setTimeout(() => {
      if (this.status === "open") this.sendResume(requestId);
    }, error.retry_after_ms ?? 1000);
    return true;
  }

  /** The client stopped for good: no turn will be resumed. */
  private failFollowedTurns(): void {
    for (const { stream } of [...this.followed.values()]) stream.fail(connectionClosed());
  }

  /** One connection attempt; every way it can end goes through `settle` once. */
  private async open(): Promise<void> {
    if (this.stopped) return;
    this.status = "connecting";
    let token: string;
    let url: string;
    try {
      token = await this.options.token({ stale: false });
      url = typeof this.options.url === "function" ? this.options.url() : this.options.url;
    } catch (error) {
      if (!this.stopped) this.ended(CONNECTION_FAILED, `no token or url: ${(error as Error)?.message ?? error}`);
      return;
    }
    if (this.stopped) return;
    let socket: WebSocketLike;
    try {
      socket = new this.Impl(url);
    } catch (error) {
      this.ended(CONNECTION_FAILED, `cannot open ${url}: ${(error as Error)?.message ?? error}`);
      return;
    }
    this.socket = socket;
    let settled = false;
    let errorGrace: ReturnType<typeof setTimeout> | undefined;
    const attemptTimer = setTimeout(() => {
      closeQuietly(socket, 4000, "connect timeout");
      settle(CONNECTION_FAILED, "connect timeout");
    }, this.options.connectTimeoutMs ?? 10_000);
    const settle = (code: number, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(attemptTimer);
      clearTimeout(errorGrace);
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.settleSocket = undefined;
      this.ended(code, reason);
    };
    this.settleSocket = settle;
    socket.onopen = () => {
      try {
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
      } catch {
        return; // closing already; its close or error settles the attempt
      }
      this.scheduleRenewal(token);
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === "welcome") clearTimeout(attemptTimer);
      this.handle(frame);
    };
    socket.onclose = (event: { code: number; reason: string }) => settle(event.code, event.reason);
    socket.onerror = () => {
      // Usually `close` follows with the real code; some runtimes (Node's built-in WebSocket on a
      // refused connect) never send it, and the attempt must not hang.
      if (settled || errorGrace) return;
      errorGrace = setTimeout(() => {
        closeQuietly(socket, 4000, "connection failed");
        settle(CONNECTION_FAILED, "connection failed");
      }, ERROR_CLOSE_GRACE_MS);
    };
  }

  /** The attempt or the connection ended: reconnect unless closed, never welcomed, or final. */
  private ended(code: number, reason: string): void {
    this.cleanup();
    const willReconnect = !this.stopped && this.everConnected && !FINAL_CLOSE_CODES.has(code);
    this.status = willReconnect ? "connecting" : "closed";
    this.emit("close", { code, reason, willReconnect });
    if (willReconnect) this.scheduleReconnect();
    else this.failFollowedTurns();
  }

  private handle(frame: ServerFrame): void {
    switch (frame.type) {
      case "welcome":
        this.status = "open";
        this.connectionId = frame.connection_id;
        this.welcome = frame;
        this.attempt = 0;
        this.everConnected = true;
        this.startHeartbeat(frame.heartbeat_s);
        // Resumed before the app hears of the welcome: a turn its listener attaches to with
        // resumeChat is then resumed once, by that call.
        this.resumeFollowedTurns();
        this.emit("welcome", frame);
        this.emit("active_turns", this.unfollowedTurns(frame));
        return;
      case "tool_call":
        void this.runTool(frame);
        return;
      case "tool_cancel":
        this.running.get(frame.id)?.abort(new ToolFailure("cancelled", frame.reason));
        this.running.delete(frame.id);
        return;
      case "chat_chunk":
      case "chat_done":
      case "error":
        this.routeChatFrame(frame);
        this.emit(frame.type, frame);
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
    let text: string;
    try {
      const result = (await handler(call.args, context)) ?? null;
      // Encoded here, once: a result that cannot be sent fails the call instead of vanishing.
      text = JSON.stringify({ type: "tool_result", id: call.id, ok: true, result });
    } catch (error) {
      const code = error instanceof ToolFailure ? error.code : "tool_failed";
      const message = error instanceof Error ? error.message : String(error);
      text = JSON.stringify({ type: "tool_result", id: call.id, ok: false, error: { code, message } });
    }
    this.running.delete(call.id);
    // A cancelled call, or one from a socket that has since dropped, has nobody waiting.
    if (!run.aborted && this.socket === socket) this.sendText(() => text);
  }

  private startHeartbeat(heartbeatS: number): void {
    clearInterval(this.timers.heartbeat);
    this.lastHeard = Date.now();
    this.timers.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > heartbeatS * 3000) {
        const socket = this.socket;
        if (socket) closeQuietly(socket, 4000, "server silent");
        this.settleSocket?.(4000, "server silent");
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
    clearTimeout(this.reconnectTimer);
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
    for (const listener of this.listeners.get(type) ?? []) {
      // One listener's bug must not leave the connection half-handled.
      try {
        (listener as Listener<unknown>)(event);
      } catch (error) {
        this.report(error);
      }
    }
  }

  private report(error: unknown): void {
    try {
      (this.options.onError ?? console.error)(error);
    } catch {
      // nowhere left to report it
    }
  }
}

/** A stream for a turn that was never sent: it has already failed. */
function failedStream(requestId: string, error: DeviceRequestError): ChatStream {
  const stream = new ChatStream(requestId);
  stream.fail(error);
  return stream;
}

const duplicateRequest = (requestId: string) =>
  new DeviceRequestError("duplicate_request", `a stream of this client already follows ${requestId}`);

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // already closing, or a runtime refusing the code while connecting
  }
}

/** A UUID; `crypto.randomUUID` exists only in secure contexts of browsers. */
function randomId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
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
