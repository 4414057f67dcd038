import type {
  Admission,
  RunningTurn,
  TurnEnd,
  TurnEntry,
  TurnFacts,
  TurnLog,
  TurnRecord,
  TurnRef,
} from "../../src/chat/turns/turn-log";

/**
 * The peer of the resumable path: a turn log whose `admit` fails, as when Redis is away, so
 * ChatTurns runs every turn unlogged (no append, no end entry). Everything else of the service is
 * unchanged: engine, frame handler, gateway, socket. Nothing here is reached once admit has failed,
 * except `running` (for `welcome.active_turns`), which finds nothing.
 */
export class UnloggedTurnLog implements TurnLog {
  async admit(_record: TurnRecord, _maxRunning: number): Promise<Admission> {
    throw new Error("turn log absent: this turn runs unlogged");
  }
  async describe(_ref: TurnRef, _facts: TurnFacts): Promise<void> {}
  append(_ref: TurnRef, _seq: number, _chunk: unknown): void {}
  async claim(_ref: TurnRef, _ttlS: number): Promise<boolean> {
    return false;
  }
  async end(_ref: TurnRef, _end: TurnEnd, _ttlS: number): Promise<void> {}
  async release(_ref: TurnRef): Promise<void> {}
  async read(_ref: TurnRef, _afterSeq: number): Promise<{ record: TurnRecord; entries: TurnEntry[] } | undefined> {
    return undefined;
  }
  async subscribe(_ref: TurnRef, _onEntry: (entry: TurnEntry) => void): Promise<() => Promise<void>> {
    return async () => {};
  }
  async running(_userId: string): Promise<RunningTurn[]> {
    return [];
  }
  async latest(_userId: string, _chatId: string): Promise<string | undefined> {
    return undefined;
  }
  async renewLease(_instanceId: string, _ttlMs: number): Promise<void> {}
  async dropLease(_instanceId: string): Promise<void> {}
  async orphans(_selfId: string): Promise<Array<{ instanceId: string; turns: TurnRef[] }>> {
    return [];
  }
  async forgetInstance(_instanceId: string): Promise<void> {}
  async alive(_instanceId: string): Promise<boolean> {
    return true;
  }
  async requestStop(_instanceId: string, _ref: TurnRef): Promise<void> {}
  async onStop(_instanceId: string, _handler: (ref: TurnRef) => void): Promise<() => Promise<void>> {
    return async () => {};
  }
}
