import type { Logger } from "../logger";
import { type Redis, replicasAcknowledging } from "../redis";
import { CONSUME_DEFAULTS, type ConsumeOptions, type EventConsumer, type EventEntry, type EventLog } from "./event-log";

type RawEntry = [id: string, fields: string[] | null];

/**
 * Redis Streams: XADD to append; per consumer a loop of XAUTOCLAIM (take over entries another
 * consumer left pending too long) and XREADGROUP. Reads do not BLOCK: an empty read waits
 * `blockMs` on an interruptible timer instead, so the consumer shares the command connection and
 * stops at once, and a blocked read can never outlive a stop or a lost connection.
 */
export interface RedisEventLogOptions {
  /** Approximate cap per stream; consumers far behind this many entries would lose the oldest. */
  maxLength?: number;
  /**
   * Replicas that must hold an event before `append` resolves (REDIS_WAIT_REPLICAS): a master
   * that acknowledges an event and is then failed over loses it, and the producer (an outbox
   * relay) must not forget what it has not really handed over. 0 on one node.
   */
  replicas?: number;
}

/** How long an append waits for its replicas before it fails (and its producer tries again later). */
export const REPLICA_WAIT_MS = 1000;

export class RedisEventLog implements EventLog {
  private readonly maxLength: number;
  private readonly replicas: number;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    options: RedisEventLogOptions = {},
  ) {
    this.maxLength = options.maxLength ?? 100_000;
    this.replicas = options.replicas ?? 0;
  }

  async append(stream: string, payload: string): Promise<string> {
    const id = await this.redis.xadd(stream, "MAXLEN", "~", String(this.maxLength), "*", "event", payload);
    if (!id) throw new Error("XADD returned no id");
    if (this.replicas > 0) {
      const acknowledged = await replicasAcknowledging(this.redis, stream, this.replicas, REPLICA_WAIT_MS);
      if (acknowledged < this.replicas) {
        // Consumers apply an event once however often it is appended: appending again is safe.
        throw new Error(
          `the event reached ${acknowledged} of ${this.replicas} Redis replicas in ${REPLICA_WAIT_MS} ms`,
        );
      }
    }
    return id;
  }

  /** A new group starts at the beginning of the stream: nothing produced before it existed is missed. */
  private async createGroup(options: ConsumeOptions): Promise<void> {
    try {
      await this.redis.call("XGROUP", "CREATE", options.stream, options.group, "0", "MKSTREAM");
    } catch (error) {
      if (!String(error).includes("BUSYGROUP")) throw error;
    }
  }

  async consume(options: ConsumeOptions): Promise<EventConsumer> {
    const settings = { ...CONSUME_DEFAULTS, ...options };
    const connection = this.redis;
    await this.createGroup(options);
    let running = true;
    let wake = () => {};
    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    let lastClaim = 0;
    const handle = async (entries: RawEntry[]) => {
      for (const [id, fields] of entries) {
        if (!fields) continue; // deleted by trimming while pending
        const entry: EventEntry = { id, payload: fieldValue(fields, "event") };
        try {
          await options.handler(entry);
          await connection.xack(options.stream, options.group, id);
        } catch (error) {
          options.onError?.(error, entry);
        }
      }
    };
    const loop = async () => {
      let failures = 0;
      while (running) {
        try {
          if (Date.now() - lastClaim >= settings.claimIdleMs / 2) {
            lastClaim = Date.now();
            let cursor = "0-0";
            do {
              const [next, claimed] = (await connection.call(
                "XAUTOCLAIM",
                options.stream,
                options.group,
                options.consumer,
                settings.claimIdleMs,
                cursor,
                "COUNT",
                settings.batch,
              )) as [string, RawEntry[]];
              await handle(claimed);
              cursor = next;
            } while (running && cursor !== "0-0");
          }
          const read = (await connection.xreadgroup(
            "GROUP",
            options.group,
            options.consumer,
            "COUNT",
            settings.batch,
            "STREAMS",
            options.stream,
            ">",
          )) as unknown as Array<[string, RawEntry[]]> | null;
          const entries = read?.[0]?.[1] ?? [];
          await handle(entries);
          if (entries.length === 0 && running) await pause(Math.min(settings.blockMs, settings.claimIdleMs / 2));
          failures = 0;
        } catch (error) {
          if (!running) break;
          failures += 1;
          if (failures === 1) this.logger.warn({ err: String(error), stream: options.stream }, "event consumer error");
          options.onError?.(error);
          // Redis is down or the group was lost: back off, then recreate the group if needed.
          await pause(Math.min(100 * 2 ** failures, 5000));
          if (String(error).includes("NOGROUP")) await this.createGroup(options).catch(() => undefined);
        }
      }
    };
    const done = loop();
    return {
      async stop() {
        running = false;
        wake();
        await done;
      },
      async pending() {
        const [count] = (await connection.xpending(options.stream, options.group)) as [number, ...unknown[]];
        return Number(count);
      },
    };
  }
}

function fieldValue(fields: string[], name: string): string {
  for (let i = 0; i < fields.length - 1; i += 2) if (fields[i] === name) return fields[i + 1] ?? "";
  return "";
}
