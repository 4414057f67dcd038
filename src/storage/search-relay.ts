import { type DocumentSearchJob, type DocumentSearchQueue, DocumentSearchReply } from "../shared/document-search";
import type { StorageContext } from "./context";
import { searchFor } from "./documents";

/** Searches one storage replica runs at once for chat turns (each one embedding call and one query). */
const CONCURRENCY = 4;

/**
 * The storage side of the chat agent's `documents_search`: takes searches off the queue, runs them
 * for the job's user, answers on the asking chat instance's reply channel. A job past its deadline
 * is dropped (nobody waits for it); a failure is answered as one, so the turn does not wait it out.
 */
export function startSearchRelay(ctx: StorageContext, queue: DocumentSearchQueue): void {
  const { bus, keys } = ctx.platform;
  queue.process(
    async (job) => {
      const data: DocumentSearchJob = job.data;
      if (data.expiresAt < Date.now()) return;
      let reply: DocumentSearchReply;
      try {
        reply = { requestId: data.requestId, results: await searchFor(ctx, data.userId, data.query, data.limit) };
      } catch (error) {
        ctx.logger.warn({ err: error, user_id: data.userId }, "document search for a chat turn failed");
        reply = { requestId: data.requestId, error: "the document search failed" };
      }
      await bus.publish(keys.documentSearchReplies(data.replyTo), JSON.stringify(DocumentSearchReply.parse(reply)));
    },
    { concurrency: CONCURRENCY },
  );
}
