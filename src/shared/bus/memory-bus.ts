import type { Bus, BusHandler, Unsubscribe } from "./bus";

/** One process, no Redis: the embedded development mode. Delivery is asynchronous like Redis. */
export class MemoryBus implements Bus {
  private readonly channels = new Map<string, Set<BusHandler>>();
  private readonly patterns = new Map<string, { regex: RegExp; handlers: Set<BusHandler> }>();

  async publish(channel: string, message: string): Promise<number> {
    const targets: BusHandler[] = [...(this.channels.get(channel) ?? [])];
    for (const { regex, handlers } of this.patterns.values()) if (regex.test(channel)) targets.push(...handlers);
    if (targets.length > 0)
      queueMicrotask(() => {
        for (const handler of targets) handler(message, channel);
      });
    return targets.length;
  }

  async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
    const set = this.channels.get(channel) ?? new Set();
    set.add(handler);
    this.channels.set(channel, set);
    return async () => {
      set.delete(handler);
      if (set.size === 0) this.channels.delete(channel);
    };
  }

  async psubscribe(pattern: string, handler: BusHandler): Promise<Unsubscribe> {
    const entry = this.patterns.get(pattern) ?? { regex: globToRegex(pattern), handlers: new Set<BusHandler>() };
    entry.handlers.add(handler);
    this.patterns.set(pattern, entry);
    return async () => {
      entry.handlers.delete(handler);
      if (entry.handlers.size === 0) this.patterns.delete(pattern);
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.patterns.clear();
  }
}

function globToRegex(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}
