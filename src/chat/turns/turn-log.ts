import type { ChatUsage } from "../../protocol";

/** How a turn ended, as its followers are told: its `chat_done`, or the `error` it failed with. */
export type TurnEnd =
  | {
      outcome: "done";
      chat_id: string;
      message_id: string;
      finish_reason: string;
      usage: ChatUsage;
    }
  | { outcome: "error"; code: string; message: string };

/** One entry of a turn's log, in order: its chunks (seq 0, 1, ...) and, last, how it ended. */
export type TurnEntry = { kind: "chunk"; seq: number; chunk: unknown } | { kind: "end"; end: TurnEnd };

/** Names one turn: the user's, by the request id the device (or the HTTP route) gave it. */
export interface TurnRef {
  userId: string;
  requestId: string;
}

/**
 * What any instance needs to store a turn's partial answer once its own instance is gone, as the
 * chat engine serialises it (see turns.ts): the log keeps it without reading it.
 */
export type TurnFacts = string;

/** A turn as recorded when it was admitted. */
export interface TurnRecord extends TurnRef {
  chatId: string;
  /** The instance generating it: stops go there, and its lease says whether it is still alive. */
  instanceId: string;
  startedAt: number;
  facts?: TurnFacts;
}

/** A running turn as `welcome.active_turns` lists it. */
export interface RunningTurn extends TurnRef {
  chatId: string;
  instanceId: string;
  lastSeq: number;
}

export type Admission = "admitted" | "duplicate" | "busy";

/**
 * The per-turn log behind resumable chat turns: Redis Streams when Redis is configured (every key
 * of a turn in one Cluster slot), in-process in embedded mode. Both pass
 * test/chat/turn-log.contract.test.ts.
 */
export interface TurnLog {
  /**
   * Takes one of the user's running-turn places for the request id, atomically: `duplicate` when
   * that request id is already running, `busy` when the user has `maxRunning` turns running.
   * An admitted turn starts an empty log (a request id used before starts over).
   */
  admit(record: TurnRecord, maxRunning: number): Promise<Admission>;
  /** Records what the turn stores, once accepted (see TurnFacts). */
  describe(ref: TurnRef, facts: TurnFacts): Promise<void>;
  /**
   * Appends one chunk. Appends of a turn are written in call order without being awaited, so the
   * chunk reaches the device that asked without waiting for Redis; a failed append is reported to
   * `onAppendFailed`, and a follower that sees the gap reads the log again.
   */
  append(ref: TurnRef, seq: number, chunk: unknown): void;
  /**
   * Claims the end of the turn: true for the first caller only (its instance at the turn's end, or
   * an instance that found that one gone), which then stores the message and calls `end`.
   */
  claim(ref: TurnRef, ttlS: number): Promise<boolean>;
  /**
   * Writes and publishes the turn's end entry, gives its running place back, and keeps its log
   * `ttlS` seconds more.
   */
  end(ref: TurnRef, end: TurnEnd, ttlS: number): Promise<void>;
  /** Gives back the place of a turn refused before it produced anything; its log is dropped. */
  release(ref: TurnRef): Promise<void>;
  /** The turn and its entries after `afterSeq`; undefined when unknown or expired. */
  read(ref: TurnRef, afterSeq: number): Promise<{ record: TurnRecord; entries: TurnEntry[] } | undefined>;
  /** Live entries of the turn as they are appended (possibly some already read: callers dedupe by seq). */
  subscribe(ref: TurnRef, onEntry: (entry: TurnEntry) => void): Promise<() => Promise<void>>;
  /** The user's running turns with the last seq each has logged. */
  running(userId: string): Promise<RunningTurn[]>;
  /** The request id of the conversation's latest turn while its log is kept (running or ended). */
  latest(userId: string, chatId: string): Promise<string | undefined>;

  // Instances: who generates what, and who is still alive.
  /** Renews this instance's lease on the turns it generates. */
  renewLease(instanceId: string, ttlMs: number): Promise<void>;
  /** Drops this instance's lease (clean shutdown, after its turns ended). */
  dropLease(instanceId: string): Promise<void>;
  /** Instances whose lease is gone, with the turns they were generating. */
  orphans(selfId: string): Promise<Array<{ instanceId: string; turns: TurnRef[] }>>;
  /** Forgets the turns a sweep ended, and the instance once none of its turns is left. */
  forgetInstance(instanceId: string, swept: TurnRef[]): Promise<void>;
  /** Whether the instance still holds its lease. */
  alive(instanceId: string): Promise<boolean>;

  // Stops travel to the instance generating the turn.
  requestStop(instanceId: string, ref: TurnRef): Promise<void>;
  onStop(instanceId: string, handler: (ref: TurnRef) => void): Promise<() => Promise<void>>;
}

/** The chunks of a turn's entries, in order, for rebuilding its partial message. */
export const chunksOf = (entries: TurnEntry[]): unknown[] =>
  entries.flatMap((entry) => (entry.kind === "chunk" ? [entry.chunk] : []));
