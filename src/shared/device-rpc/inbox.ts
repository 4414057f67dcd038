import type { Keys } from "../keys";
import type { RpcLane } from "./lane";

/**
 * The most a batch carries, in UTF-16 code units of its messages: a larger one is sent in parts.
 * It bounds the size of one Redis message and the work one delivery does on the receiving side;
 * at a few hundred bytes a call, 64 KiB already holds more than a turn of calls under load.
 */
export const MAX_BATCH_CHARS = 64 * 1024;

interface Batch {
  texts: string[];
  chars: number;
  /** One promise for every message of the batch: they are published, or refused, together. */
  sent: Promise<number>;
  resolve(receivers: number): void;
  reject(error: unknown): void;
}

/**
 * Sends messages to instances' inboxes, one Redis message per inbox per event-loop turn.
 *
 * Under load, one inbox message arrives per call in each direction, and a Redis message costs
 * more to publish, route and deliver than the little a call does with it: with 2000 calls in
 * flight, the caller spent 21-26 µs of CPU per call and the device's instance 25-31, against
 * 8 and 16-18 with the messages of a turn sent together (bench/RESULTS.md, "Device RPC: one
 * Redis message per inbox per turn"). A turn's messages for one inbox therefore leave together at
 * the end of the turn (`setImmediate`, not a timer: nothing waits for more to come), a lone one
 * as it always did, several as a JSON array on the inbox's batch channel.
 *
 * The batch channel is apart from the inbox itself so that an instance of an earlier version,
 * which listens on its inbox only and cannot read an array, is still reached during a rolling
 * upgrade: a batch nobody takes is sent again message by message on the inbox. Both channels hash
 * to one Redis Cluster slot (`keys.instanceBatchInbox`), so an inbox's messages keep their order on
 * every topology.
 */
export class InboxSender {
  private batches = new Map<string, Batch>();
  private flushScheduled = false;

  constructor(
    private readonly lane: RpcLane,
    private readonly keys: Keys,
  ) {}

  /** Sends `text` to the inbox of `instanceId` at the end of this turn; resolves to how many instances took it. */
  send(instanceId: string, text: string): Promise<number> {
    let batch = this.batches.get(instanceId);
    if (batch && batch.chars + text.length > MAX_BATCH_CHARS) {
      this.batches.delete(instanceId);
      this.publish(instanceId, batch);
      batch = undefined;
    }
    if (!batch) {
      batch = this.open();
      this.batches.set(instanceId, batch);
    }
    batch.texts.push(text);
    batch.chars += text.length;
    return batch.sent;
  }

  private open(): Batch {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    return { texts: [], chars: 0, sent: promise, resolve, reject };
  }

  private readonly flush = () => {
    this.flushScheduled = false;
    const batches = this.batches;
    this.batches = new Map();
    for (const [instanceId, batch] of batches) this.publish(instanceId, batch);
  };

  private publish(instanceId: string, { texts, resolve, reject }: Batch): void {
    const inbox = this.keys.instanceInbox(instanceId);
    if (texts.length === 1) {
      this.lane.publish(inbox, texts[0]!).then(resolve, reject);
      return;
    }
    this.lane.publish(this.keys.instanceBatchInbox(instanceId), `[${texts.join(",")}]`).then((receivers) => {
      if (receivers > 0) resolve(receivers);
      else this.oneByOne(inbox, texts).then(resolve, reject);
    }, reject);
  }

  /** An earlier version's instance (or nobody) listens on the inbox alone: what it takes, it takes one by one. */
  private async oneByOne(inbox: string, texts: string[]): Promise<number> {
    const receivers = await Promise.all(texts.map((text) => this.lane.publish(inbox, text)));
    return Math.min(...receivers);
  }
}
