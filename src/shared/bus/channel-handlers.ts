import type { BusHandler, Unsubscribe } from "./bus";

/**
 * The handlers of each channel one subscriber connection carries: the first handler of a channel
 * opens its subscription, the last one to leave closes it, and a subscription that fails to open
 * leaves nothing behind. Shared by the bus and the device RPC's lanes.
 */
export async function addChannelHandler(
  registry: Map<string, Set<BusHandler>>,
  channel: string,
  handler: BusHandler,
  open: (channel: string) => Promise<unknown>,
  shut: (channel: string) => Promise<unknown>,
): Promise<Unsubscribe> {
  let handlers = registry.get(channel);
  if (!handlers) {
    handlers = new Set();
    registry.set(channel, handlers);
    try {
      await open(channel);
    } catch (error) {
      if (registry.get(channel) === handlers) registry.delete(channel);
      throw error;
    }
  }
  handlers.add(handler);
  const set = handlers;
  return async () => {
    set.delete(handler);
    if (set.size === 0 && registry.get(channel) === set) {
      registry.delete(channel);
      await shut(channel).catch(() => {});
    }
  };
}
