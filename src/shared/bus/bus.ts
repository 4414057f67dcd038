/** A message handler; `channel` is the concrete channel even for pattern subscriptions. */
export type BusHandler = (message: string, channel: string) => void;
export type Unsubscribe = () => Promise<void>;

/**
 * Fire-and-forget pub/sub between instances. Redis in production, in-process in embedded mode;
 * both pass `test/shared/bus.contract.test.ts`.
 */
export interface Bus {
  /**
   * Resolves with how many subscribers received the message (0 means nobody listens). On a Redis
   * Cluster only the subscribers of the node that took the publish are counted: a lower bound,
   * good for logs and metrics, never for deciding that nobody listens (the device RPC, which must
   * know, uses sharded pub/sub, whose count is exact).
   */
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe>;
  /** Glob pattern (`*`), as Redis PSUBSCRIBE. */
  psubscribe(pattern: string, handler: BusHandler): Promise<Unsubscribe>;
  close(): Promise<void>;
}
