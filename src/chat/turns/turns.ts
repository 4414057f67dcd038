import type { ActiveTurn } from "../../protocol";
import { FrameError } from "../../protocol";
import { errorFrame, ServiceError } from "../../shared/errors";
import type { Logger } from "../../shared/logger";
import type { ChatEngine } from "../engine";
import {
  type AcceptedTurn,
  type ChatResult,
  type RunChatInput,
  refundTurn,
  runChat,
  type StopReason,
  usageView,
} from "../run-chat";
import { followTurn, type TurnSink } from "./follow";
import { partsFromChunks } from "./partial";
import { chunksOf, type TurnEnd, type TurnLog, type TurnRef } from "./turn-log";

export interface ChatTurnsConfig {
  instanceId: string;
  resumeTtlS: number;
  leaseMs: number;
  maxRunning: number;
}

/** A turn to run: runChat's input, named by a request id of the user's. */
export interface TurnInput extends Omit<RunChatInput, "onChunk" | "signal" | "onAccepted" | "newChatId"> {
  requestId: string;
  /**
   * Gets each chunk while whoever asked is there. A sink that throws (its socket or response went
   * away) is dropped; the turn goes on for its followers and its stored message.
   */
  onChunk?: (chunk: unknown, seq: number) => void | Promise<void>;
}

const ZERO_USAGE = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
const tooManyRunning = (max: number) =>
  new ServiceError(FrameError.tooManyChats, 429, `at most ${max} chat turns may run at once`, { "retry-after": "1" });
const duplicateRequest = () => new ServiceError(FrameError.duplicateRequest, 409, "request_id already in use");

/** What shutdown gives the turn log to drop this instance's lease and stop subscription. */
const SHUTDOWN_COURTESY_MS = 250;

const keyOf = ({ userId, requestId }: TurnRef) => `${userId}\n${requestId}`;

/**
 * Chat turns that outlive the connection that started them. A turn runs to its end (or its stop)
 * whoever listens; its chunks go to the turn log, from which any of the user's sockets or an SSE
 * reconnect follows it, on any instance. Stops reach the instance generating the turn through the
 * log's stop channel; a turn whose instance died is ended as `interrupted` by another instance,
 * which stores what it had streamed.
 */
export class ChatTurns {
  private readonly local = new Map<string, AbortController>();
  private readonly finished = new Set<Promise<unknown>>();
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  private sweeping = false;

  constructor(
    private readonly engine: ChatEngine,
    readonly log: TurnLog,
    private readonly config: ChatTurnsConfig,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const { instanceId, leaseMs } = this.config;
    await this.log.renewLease(instanceId, leaseMs).catch((error: Error) => {
      this.logger.warn({ err: error.message }, "chat turn lease not taken yet");
    });
    await this.log.onStop(instanceId, (ref) => this.abortLocal(ref, "stopped"));
    this.timers.push(
      setInterval(
        () => {
          this.log.renewLease(instanceId, leaseMs).catch((error: Error) => {
            this.logger.warn({ err: error.message }, "chat turn lease not renewed");
          });
        },
        Math.floor(leaseMs / 3),
      ),
      setInterval(() => void this.sweep(), leaseMs),
    );
  }

  /**
   * Runs one turn to its end and returns its result; refusals (a request id already running, too
   * many turns, and runChat's own: validation, quota, an unknown conversation) throw before any chunk.
   */
  async run(input: TurnInput): Promise<ChatResult> {
    const ref = { userId: input.userId, requestId: input.requestId };
    const chatId = input.chatId ?? crypto.randomUUID();
    const logged = await this.admit(ref, chatId);
    const controller = new AbortController();
    this.local.set(keyOf(ref), controller);
    let sink = input.onChunk;
    let accepted = false;
    const task = runChat(this.engine, {
      ...input,
      newChatId: chatId,
      signal: controller.signal,
      onAccepted: (turn) => {
        accepted = true;
        // Not awaited: the log applies its writes in order, so the description lands before the chunks.
        if (logged) this.describe(ref, turn);
      },
      onChunk: async (chunk, seq) => {
        // The device that asked gets the chunk first; the log's write goes out right after, unawaited.
        // A sink that throws (whoever asked went away) is dropped: the turn goes on.
        let sent: void | Promise<void> | undefined;
        try {
          sent = sink?.(chunk, seq);
        } catch {
          sink = undefined;
        }
        if (logged) this.log.append(ref, seq, chunk);
        await sent?.catch(() => {
          sink = undefined;
        });
      },
    });
    this.finished.add(task);
    try {
      const result = await task;
      if (logged) await this.finish(ref, endOf(result));
      if (result.finishReason === "error") throw llmUnavailable();
      return result;
    } catch (error) {
      if (logged && !accepted) await this.log.release(ref).catch(() => {});
      else if (logged) await this.finish(ref, endOfError(error));
      throw error;
    } finally {
      this.finished.delete(task);
      this.local.delete(keyOf(ref));
    }
  }

  /** Takes the turn's running place; a turn log that is down leaves the turn running unlogged. */
  private async admit(ref: TurnRef, chatId: string): Promise<boolean> {
    const record = { ...ref, chatId, instanceId: this.config.instanceId, startedAt: Date.now() };
    let admission: Awaited<ReturnType<TurnLog["admit"]>>;
    try {
      admission = await this.log.admit(record, this.config.maxRunning);
    } catch (error) {
      this.logger.warn({ err: error, request_id: ref.requestId }, "turn log unavailable: this turn cannot be resumed");
      return false;
    }
    if (admission === "duplicate") throw duplicateRequest();
    if (admission === "busy") throw tooManyRunning(this.config.maxRunning);
    return true;
  }

  private describe(ref: TurnRef, turn: AcceptedTurn): void {
    this.log.describe(ref, JSON.stringify(turn)).catch((error: unknown) => {
      this.logger.warn({ err: error, request_id: ref.requestId }, "turn not described: an interruption stores nothing");
    });
  }

  /** Ends the logged turn once; an instance that declared it interrupted meanwhile keeps its verdict. */
  private async finish(ref: TurnRef, end: TurnEnd): Promise<void> {
    try {
      if (!(await this.log.claim(ref, this.config.resumeTtlS))) {
        this.logger.warn({ request_id: ref.requestId }, "turn was already ended elsewhere (declared interrupted)");
        return;
      }
      await this.log.end(ref, end, this.config.resumeTtlS);
    } catch (error) {
      this.logger.warn(
        { err: error, request_id: ref.requestId },
        "turn end not logged: followers will see it interrupted",
      );
    }
  }

  /** Stops the user's turn wherever it runs; false when no such turn is running. */
  async stop(ref: TurnRef): Promise<boolean> {
    if (this.abortLocal(ref, "stopped")) return true;
    const turn = (await this.log.running(ref.userId)).find((running) => running.requestId === ref.requestId);
    if (!turn) return false;
    await this.log.requestStop(turn.instanceId, ref);
    return true;
  }

  /** Stops the conversation's running turn; its request id, or undefined when none runs. */
  async stopChat(userId: string, chatId: string): Promise<string | undefined> {
    const turn = (await this.log.running(userId)).find((running) => running.chatId === chatId);
    if (!turn) return undefined;
    await this.stop({ userId, requestId: turn.requestId });
    return turn.requestId;
  }

  private abortLocal(ref: TurnRef, reason: StopReason): boolean {
    const controller = this.local.get(keyOf(ref));
    if (!controller) return false;
    controller.abort(reason);
    return true;
  }

  /** The user's turns still running, for `welcome.active_turns`. */
  async active(userId: string): Promise<ActiveTurn[]> {
    const turns = await this.log.running(userId);
    return turns.map((turn) => ({ request_id: turn.requestId, chat_id: turn.chatId, last_seq: turn.lastSeq }));
  }

  /** The request id of the conversation's running turn, or (`includeEnded`) of its latest still kept. */
  async turnOfChat(userId: string, chatId: string, includeEnded: boolean): Promise<string | undefined> {
    const running = (await this.log.running(userId)).find((turn) => turn.chatId === chatId);
    if (running || !includeEnded) return running?.requestId;
    return this.log.latest(userId, chatId);
  }

  /**
   * Follows one of the user's turns after `afterSeq` until its end; false when it is unknown or
   * expired. A turn whose instance is found gone meanwhile is ended here, as `interrupted`.
   */
  follow(ref: TurnRef, afterSeq: number, sink: TurnSink, signal?: AbortSignal, onFound?: () => void): Promise<boolean> {
    return followTurn({
      onFound,
      log: this.log,
      ref,
      afterSeq,
      sink,
      signal,
      checkEveryMs: this.config.leaseMs,
      generatorGone: async (instanceId) =>
        instanceId !== this.config.instanceId && !(await this.log.alive(instanceId).catch(() => true)),
      interrupt: () => this.interrupt(ref),
    });
  }

  /** Ends the turns of instances whose lease is gone (they were killed), storing what each streamed. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const orphan of await this.log.orphans(this.config.instanceId)) {
        for (const ref of orphan.turns) await this.interrupt(ref);
        await this.log.forgetInstance(orphan.instanceId, orphan.turns);
      }
    } catch (error) {
      this.logger.warn({ err: error }, "sweep of interrupted chat turns failed");
    } finally {
      this.sweeping = false;
    }
  }

  /** Ends a turn whose instance is gone: its streamed part stored as the message, followers told. */
  async interrupt(ref: TurnRef): Promise<void> {
    const read = await this.log.read(ref, -1);
    if (!read || read.entries.some((entry) => entry.kind === "end")) return;
    if (!(await this.log.claim(ref, this.config.resumeTtlS))) return;
    const chunks = chunksOf(read.entries);
    const accepted = read.record.facts ? reviveAccepted(read.record.facts) : undefined;
    if (accepted) {
      const parts = await partsFromChunks(chunks);
      const { stored } = accepted;
      // Through the reply store: a database outage defers the write instead of losing the part.
      await this.engine.replies.store({
        ...stored,
        assistant: { ...stored.assistant, parts, status: "interrupted", inputTokens: 0, outputTokens: 0 },
      });
      // Nothing the user could see (only the stream's start): the unit goes back, as for a failed turn.
      if (parts.length === 0) await refundTurn(this.engine, ref.userId, accepted.quotaDay);
    }
    const end: TurnEnd = {
      outcome: "done",
      chat_id: read.record.chatId,
      message_id: accepted?.stored.assistant.id ?? "",
      finish_reason: "interrupted",
      usage: ZERO_USAGE,
    };
    await this.log.end(ref, end, this.config.resumeTtlS);
    this.engine.metrics.turns.inc({
      surface: accepted?.stored.conversation?.surface ?? "unknown",
      outcome: "interrupted",
    });
    this.logger.warn(
      {
        request_id: ref.requestId,
        user_id: ref.userId,
        chat_id: read.record.chatId,
        instance: read.record.instanceId,
        chunks: chunks.length,
      },
      "chat turn interrupted: the instance generating it is gone",
    );
  }

  /**
   * Shutdown: lets this instance's turns run until `deadline` (epoch ms), then cuts what is left as
   * `interrupted` (stored with what it streamed), and gives up the lease.
   */
  async drain(deadline: number): Promise<void> {
    await Promise.race([Promise.allSettled([...this.finished]), Bun.sleep(Math.max(0, deadline - Date.now()))]);
    for (const controller of this.local.values()) controller.abort("interrupted" satisfies StopReason);
    await Promise.allSettled([...this.finished]);
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    // The stop subscription ends with the platform's bus. Dropping the lease is a courtesy (it
    // expires anyway): a Redis that is away must not hold the shutdown.
    await Promise.race([this.log.dropLease(this.config.instanceId).catch(() => {}), Bun.sleep(SHUTDOWN_COURTESY_MS)]);
  }

  get runningHere(): number {
    return this.local.size;
  }
}

export const llmUnavailable = () => new ServiceError("llm_unavailable", 502, "the language model is unavailable");

function endOf(result: ChatResult): TurnEnd {
  if (result.finishReason === "error") return endOfError(llmUnavailable());
  return {
    outcome: "done",
    chat_id: result.chatId,
    message_id: result.messageId,
    finish_reason: result.finishReason,
    usage: usageView(result),
  };
}

function endOfError(error: unknown): TurnEnd {
  const frame = errorFrame(error);
  return { outcome: "error", code: frame.code, message: frame.message };
}

/** The accepted turn as described in the log (JSON): its dates revived. */
function reviveAccepted(json: string): AcceptedTurn {
  const value = JSON.parse(json) as AcceptedTurn;
  const date = (when: unknown) => new Date(when as string);
  const { conversation, user, assistant } = value.stored;
  return {
    quotaDay: date(value.quotaDay),
    stored: {
      conversation: conversation && { ...conversation, createdAt: date(conversation.createdAt) },
      user: { ...user, createdAt: date(user.createdAt) },
      assistant: { ...assistant, createdAt: date(assistant.createdAt) },
    },
  };
}
