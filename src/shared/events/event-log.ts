/** One entry of a durable stream, as a consumer sees it. */
export interface EventEntry {
  id: string;
  payload: string;
}

/** Resolves when the entry is handled (then acknowledged); a throw leaves it pending for redelivery. */
export type EventHandler = (entry: EventEntry) => Promise<void>;

export interface ConsumeOptions {
  stream: string;
  /** One group per consuming service: each entry reaches one consumer of the group. */
  group: string;
  /** Unique per instance (the instance id). */
  consumer: string;
  handler: EventHandler;
  /** An entry left unacknowledged this long (its consumer crashed or failed) is delivered again. */
  claimIdleMs?: number;
  /** How long an empty read waits before reading again: the longest delay of a new event. */
  blockMs?: number;
  batch?: number;
  onError?: (error: unknown, entry?: EventEntry) => void;
}

export interface EventConsumer {
  /** Stops reading; in-flight handlers finish first. Unacknowledged entries stay pending. */
  stop(): Promise<void>;
  /** Entries the group has delivered and nobody acknowledged yet (failing or being handled). */
  pending(): Promise<number>;
}

/**
 * A durable, at-least-once event log with consumer groups (Redis Streams in production, in-process
 * in embedded mode); both pass `test/shared/event-log.contract.test.ts`. A new group starts at the
 * beginning of the stream, so events produced before a service first started are not missed.
 * Handlers must be idempotent.
 */
export interface EventLog {
  append(stream: string, payload: string): Promise<string>;
  /** Resolves once the group exists and reading has begun. */
  consume(options: ConsumeOptions): Promise<EventConsumer>;
}

export const CONSUME_DEFAULTS = { claimIdleMs: 30_000, blockMs: 250, batch: 32 } as const;
