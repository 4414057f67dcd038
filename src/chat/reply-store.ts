import type { Database } from "../shared/db";
import { isDatabaseOutage } from "../shared/errors";
import type { Logger } from "../shared/logger";
import type { Metrics } from "../shared/metrics";
import { type StoredTurn, storeTurn } from "./history";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/**
 * Stores finished turns so that a reply the user was shown is never lost to a database outage. The
 * first write happens in the request; if PostgreSQL is unreachable then, the turn is kept in memory
 * and written again with backoff until it lands (the write is idempotent: rows are keyed by the
 * ids the turn already announced). Shutdown waits for pending turns within the grace period; a
 * process killed during an outage still loses them, which the log says.
 */
export class ReplyStore {
  private readonly pending = new Map<string, Promise<void>>();
  private readonly deferred;
  private readonly waiting;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
    metrics: Metrics,
  ) {
    this.deferred = metrics.counter(
      "chat_replies_deferred_total",
      "Finished turns whose storing waited for PostgreSQL",
    );
    this.waiting = metrics.gauge("chat_replies_pending", "Finished turns held in memory until PostgreSQL answers");
  }

  /** Stores the turn now, or (during an outage) in the background; other errors are thrown. */
  async store(turn: StoredTurn): Promise<"stored" | "deferred"> {
    try {
      await storeTurn(this.db, turn);
      return "stored";
    } catch (error) {
      if (!isDatabaseOutage(error) || this.closed) throw error;
      this.deferred.inc();
      this.logger.warn({ err: error, message_id: turn.assistant.id }, "reply kept until the database answers");
      const retry = this.retry(turn).finally(() => {
        this.pending.delete(turn.assistant.id);
        this.waiting.set(this.pending.size);
      });
      this.pending.set(turn.assistant.id, retry);
      this.waiting.set(this.pending.size);
      return "deferred";
    }
  }

  /** Waits for pending turns up to `timeoutMs`; returns how many are still not stored. */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled(this.pending.values()), Bun.sleep(Math.max(0, deadline - Date.now()))]);
    }
    this.closed = true;
    if (this.pending.size > 0) {
      this.logger.error({ replies: this.pending.size }, "replies not stored before shutdown: the database stayed away");
    }
    return this.pending.size;
  }

  private async retry(turn: StoredTurn): Promise<void> {
    for (let delay = FIRST_RETRY_MS; !this.closed; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
      await Bun.sleep(delay);
      try {
        await storeTurn(this.db, turn);
        this.logger.info({ message_id: turn.assistant.id }, "reply stored after the database came back");
        return;
      } catch (error) {
        if (!isDatabaseOutage(error)) {
          this.logger.error({ err: error, message_id: turn.assistant.id }, "reply could not be stored");
          return;
        }
      }
    }
  }
}
