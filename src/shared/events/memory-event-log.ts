import { CONSUME_DEFAULTS, type ConsumeOptions, type EventConsumer, type EventEntry, type EventLog } from "./event-log";

interface Group {
  /** Index of the next entry never delivered to this group. */
  next: number;
  pending: Map<string, { entry: EventEntry; deliveredAt: number }>;
}

interface Stream {
  entries: EventEntry[];
  groups: Map<string, Group>;
  wake: Set<() => void>;
}

/**
 * The event log of one process (embedded development mode): the same group semantics as Redis
 * Streams, kept in memory, so nothing survives a restart.
 */
export class MemoryEventLog implements EventLog {
  private readonly streams = new Map<string, Stream>();
  private sequence = 0;

  async append(stream: string, payload: string): Promise<string> {
    const state = this.stream(stream);
    const id = `${Date.now()}-${this.sequence++}`;
    state.entries.push({ id, payload });
    for (const wake of [...state.wake]) wake();
    return id;
  }

  async consume(options: ConsumeOptions): Promise<EventConsumer> {
    const settings = { ...CONSUME_DEFAULTS, ...options };
    const state = this.stream(options.stream);
    let group = state.groups.get(options.group);
    if (!group) {
      group = { next: 0, pending: new Map() };
      state.groups.set(options.group, group);
    }
    const own = group;
    let running = true;
    let stopWaiting = () => {};
    const deliver = async (entry: EventEntry) => {
      own.pending.set(entry.id, { entry, deliveredAt: Date.now() });
      try {
        await options.handler(entry);
        own.pending.delete(entry.id);
      } catch (error) {
        options.onError?.(error, entry);
      }
    };
    const loop = async () => {
      while (running) {
        const now = Date.now();
        const stale = [...own.pending.values()].filter((item) => now - item.deliveredAt >= settings.claimIdleMs);
        for (const item of stale.slice(0, settings.batch)) await deliver(item.entry);
        const fresh = state.entries.slice(own.next, own.next + settings.batch);
        own.next += fresh.length;
        for (const entry of fresh) await deliver(entry);
        if (stale.length === 0 && fresh.length === 0 && running) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, Math.min(settings.blockMs, settings.claimIdleMs / 2));
            function done() {
              clearTimeout(timer);
              state.wake.delete(done);
              resolve();
            }
            state.wake.add(done);
            stopWaiting = done;
          });
        }
      }
    };
    const finished = loop();
    return {
      async stop() {
        running = false;
        stopWaiting();
        await finished;
      },
      pending: async () => own.pending.size,
    };
  }

  private stream(name: string): Stream {
    let state = this.streams.get(name);
    if (!state) {
      state = { entries: [], groups: new Map(), wake: new Set() };
      this.streams.set(name, state);
    }
    return state;
  }
}
