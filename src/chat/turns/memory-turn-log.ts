import type { Admission, RunningTurn, TurnEnd, TurnEntry, TurnFacts, TurnLog, TurnRecord, TurnRef } from "./turn-log";

interface MemoryTurn {
  record: TurnRecord;
  entries: TurnEntry[];
  ended: boolean;
  listeners: Set<(entry: TurnEntry) => void>;
  expiry?: ReturnType<typeof setTimeout>;
}

const keyOf = ({ userId, requestId }: TurnRef) => JSON.stringify([userId, requestId]);

/**
 * One process, no Redis: the embedded mode. Every turn is generated here, so no instance can die
 * under another: leases and orphans are trivially empty, and stops are local.
 */
export class MemoryTurnLog implements TurnLog {
  private readonly turns = new Map<string, MemoryTurn>();
  private readonly latestByChat = new Map<string, string>();
  private readonly stopHandlers = new Set<(ref: TurnRef) => void>();

  async admit(record: TurnRecord, maxRunning: number): Promise<Admission> {
    const key = keyOf(record);
    const existing = this.turns.get(key);
    if (existing && !existing.ended) return "duplicate";
    // Counted without yielding: concurrent admissions see each other, as Redis's script makes them.
    if (this.runningCount(record.userId) >= maxRunning) return "busy";
    if (existing?.expiry) clearTimeout(existing.expiry);
    this.turns.set(key, { record, entries: [], ended: false, listeners: existing?.listeners ?? new Set() });
    this.latestByChat.set(JSON.stringify([record.userId, record.chatId]), record.requestId);
    return "admitted";
  }

  async describe(ref: TurnRef, facts: TurnFacts): Promise<void> {
    const turn = this.turns.get(keyOf(ref));
    if (turn) turn.record.facts = facts;
  }

  append(ref: TurnRef, seq: number, chunk: unknown): void {
    this.push(ref, { kind: "chunk", seq, chunk });
  }

  private push(ref: TurnRef, entry: TurnEntry): void {
    const turn = this.turns.get(keyOf(ref));
    if (!turn) return;
    turn.entries.push(entry);
    // Delivered later, as Redis would: a follower never runs inside the generator's call.
    const listeners = [...turn.listeners];
    queueMicrotask(() => {
      for (const listener of listeners) listener(entry);
    });
  }

  async claim(ref: TurnRef): Promise<boolean> {
    const turn = this.turns.get(keyOf(ref));
    if (!turn || turn.ended) return false;
    turn.ended = true;
    return true;
  }

  async end(ref: TurnRef, end: TurnEnd, ttlS: number): Promise<void> {
    const key = keyOf(ref);
    const turn = this.turns.get(key);
    if (!turn) return;
    turn.ended = true;
    this.push(ref, { kind: "end", end });
    turn.expiry = setTimeout(() => {
      if (this.turns.get(key) === turn) this.turns.delete(key);
      const chat = JSON.stringify([ref.userId, turn.record.chatId]);
      if (this.latestByChat.get(chat) === ref.requestId) this.latestByChat.delete(chat);
    }, ttlS * 1000);
    turn.expiry.unref?.();
  }

  async release(ref: TurnRef): Promise<void> {
    const turn = this.turns.get(keyOf(ref));
    this.turns.delete(keyOf(ref));
    const chat = JSON.stringify([ref.userId, turn?.record.chatId]);
    if (turn && this.latestByChat.get(chat) === ref.requestId) this.latestByChat.delete(chat);
  }

  private runningCount(userId: string): number {
    let count = 0;
    for (const turn of this.turns.values()) if (!turn.ended && turn.record.userId === userId) count++;
    return count;
  }

  async read(ref: TurnRef, afterSeq: number): Promise<{ record: TurnRecord; entries: TurnEntry[] } | undefined> {
    const turn = this.turns.get(keyOf(ref));
    if (!turn) return undefined;
    const entries = turn.entries.filter((entry) => entry.kind === "end" || entry.seq > afterSeq);
    return { record: turn.record, entries };
  }

  async subscribe(ref: TurnRef, onEntry: (entry: TurnEntry) => void): Promise<() => Promise<void>> {
    const key = keyOf(ref);
    // A follower may subscribe before the turn exists here (it then reads nothing and gives up).
    const turn = this.turns.get(key);
    if (!turn) return async () => {};
    turn.listeners.add(onEntry);
    return async () => {
      turn.listeners.delete(onEntry);
    };
  }

  async running(userId: string): Promise<RunningTurn[]> {
    const found: RunningTurn[] = [];
    for (const turn of this.turns.values()) {
      if (turn.ended || turn.record.userId !== userId) continue;
      const last = turn.entries.findLast((entry) => entry.kind === "chunk");
      found.push({ ...turn.record, lastSeq: last?.kind === "chunk" ? last.seq : -1 });
    }
    return found;
  }

  async latest(userId: string, chatId: string): Promise<string | undefined> {
    return this.latestByChat.get(JSON.stringify([userId, chatId]));
  }

  async renewLease(): Promise<void> {}
  async dropLease(): Promise<void> {}
  async orphans(): Promise<Array<{ instanceId: string; turns: TurnRef[] }>> {
    return [];
  }
  async forgetInstance(): Promise<void> {}
  async alive(): Promise<boolean> {
    return true;
  }

  async requestStop(_instanceId: string, ref: TurnRef): Promise<void> {
    for (const handler of this.stopHandlers) handler(ref);
  }

  async onStop(_instanceId: string, handler: (ref: TurnRef) => void): Promise<() => Promise<void>> {
    this.stopHandlers.add(handler);
    return async () => {
      this.stopHandlers.delete(handler);
    };
  }
}
