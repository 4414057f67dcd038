import type { TurnEnd, TurnEntry, TurnLog, TurnRecord, TurnRef } from "./turn-log";

/** Where a follower's entries go: a socket's frames or an SSE response. Throwing stops following. */
export interface TurnSink {
  chunk(seq: number, chunk: unknown, record: TurnRecord): void | Promise<void>;
  end(end: TurnEnd, record: TurnRecord): void | Promise<void>;
}

export interface FollowOptions {
  log: TurnLog;
  ref: TurnRef;
  afterSeq: number;
  sink: TurnSink;
  signal?: AbortSignal;
  /** How long a follower waits in silence before checking the log and the generating instance. */
  checkEveryMs: number;
  generatorGone(instanceId: string): Promise<boolean>;
  /** Ends the turn as interrupted (its instance is gone); its end entry then reaches the follower. */
  interrupt(): Promise<void>;
  /** Called once the turn is found, before anything is delivered (an SSE response starts then). */
  onFound?: () => void;
}

/**
 * Replays a turn's log after `afterSeq`, then its live entries, each chunk exactly once and in
 * order, until its end. The subscription is taken before the read, so nothing appended between
 * the two is missed; chunks seen twice are dropped by seq. A gap in the live entries (a lost
 * publish) or a silence is filled from the log, which is the authority.
 */
export async function followTurn(options: FollowOptions): Promise<boolean> {
  const { log, ref, sink, signal } = options;
  const queue: TurnEntry[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = await log.subscribe(ref, (entry) => {
    queue.push(entry);
    wake?.();
  });
  try {
    const first = await log.read(ref, options.afterSeq);
    if (!first) return false;
    options.onFound?.();
    const state: FollowState = { last: options.afterSeq, ended: false, record: first.record };
    await deliver(state, first.entries, sink, true);
    while (!state.ended && !signal?.aborted) {
      if (queue.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.checkEveryMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          signal?.addEventListener("abort", wake, { once: true });
        });
        wake = undefined;
      }
      if (signal?.aborted) break;
      const batch = queue.splice(0);
      if (batch.length === 0) {
        // Silence: the generating instance may be gone, or a publish lost; the log says.
        if (await options.generatorGone(state.record.instanceId)) await options.interrupt();
        if (!(await catchUp(log, ref, state, sink))) return true;
        continue;
      }
      const complete = await deliver(state, batch, sink, false);
      if (!complete && !(await catchUp(log, ref, state, sink))) return true;
    }
    return true;
  } finally {
    await unsubscribe().catch(() => {});
  }
}

interface FollowState {
  last: number;
  ended: boolean;
  record: TurnRecord;
}

/** Delivers the log's entries after the last one delivered; false when the log has expired. */
async function catchUp(log: TurnLog, ref: TurnRef, state: FollowState, sink: TurnSink): Promise<boolean> {
  const again = await log.read(ref, state.last);
  if (!again) return false;
  await deliver(state, again.entries, sink, true);
  return true;
}

/**
 * Delivers entries in order, skipping chunks already delivered. Live entries stop at a gap or at
 * the end (false: the caller reads the log, so nothing before the end is skipped); the log's own
 * entries (`authoritative`) are delivered as they are.
 */
async function deliver(state: FollowState, entries: TurnEntry[], sink: TurnSink, authoritative: boolean) {
  for (const entry of entries) {
    if (state.ended) return true;
    if (entry.kind === "end") {
      if (!authoritative) return false;
      state.ended = true;
      await sink.end(entry.end, state.record);
      return true;
    }
    if (entry.seq <= state.last) continue;
    if (entry.seq > state.last + 1 && !authoritative) return false;
    await sink.chunk(entry.seq, entry.chunk, state.record);
    state.last = entry.seq;
  }
  return true;
}
