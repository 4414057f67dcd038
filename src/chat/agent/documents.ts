import { type ToolSet, tool } from "ai";
import { z } from "zod";
import type { Unsubscribe } from "../../shared/bus/bus";
import {
  type DocumentSearchHit,
  type DocumentSearchQueue,
  DocumentSearchReply,
  openDocumentSearchQueue,
} from "../../shared/document-search";
import type { Logger } from "../../shared/logger";
import type { Platform } from "../../shared/platform";

/** Thrown when no storage replica answered in time, or it answered with a failure. */
export class DocumentSearchError extends Error {
  override name = "DocumentSearchError";
}

export interface DocumentSearch {
  search(userId: string, query: string, limit: number, signal?: AbortSignal): Promise<DocumentSearchHit[]>;
  close(): Promise<void>;
}

/**
 * The chat side of document search: a job on the shared queue, the answer on this instance's reply
 * channel (subscribed once, on first use), matched by request id. Waits at most `timeoutMs`.
 */
export function createDocumentSearch(platform: Platform, logger: Logger, timeoutMs: number): DocumentSearch {
  const queue: DocumentSearchQueue = openDocumentSearchQueue(platform);
  const pending = new Map<string, (reply: DocumentSearchReply) => void>();
  let subscription: Promise<Unsubscribe> | undefined;
  const listen = () => {
    subscription ??= platform.bus
      .subscribe(platform.keys.documentSearchReplies(platform.instanceId), (message) => {
        const parsed = DocumentSearchReply.safeParse(safeJson(message));
        if (parsed.success) pending.get(parsed.data.requestId)?.(parsed.data);
      })
      .catch((error) => {
        subscription = undefined;
        throw error;
      });
    return subscription;
  };
  return {
    async search(userId, query, limit, signal) {
      await listen();
      const requestId = crypto.randomUUID();
      const answered = new Promise<DocumentSearchReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(requestId);
          // Not left waiting for a storage replica that may never come: nobody would read its answer.
          void queue.remove(requestId).catch(() => false);
          reject(new DocumentSearchError("document search is unavailable right now"));
        }, timeoutMs);
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          pending.delete(requestId);
          reject(new DocumentSearchError("the turn was stopped"));
        });
        pending.set(requestId, (reply) => {
          clearTimeout(timer);
          pending.delete(requestId);
          resolve(reply);
        });
      });
      await queue.add(requestId, {
        userId,
        query,
        limit,
        replyTo: platform.instanceId,
        requestId,
        expiresAt: Date.now() + timeoutMs,
      });
      const reply = await answered;
      if (reply.error || !reply.results) throw new DocumentSearchError(reply.error ?? "the document search failed");
      return reply.results;
    },
    async close() {
      const unsubscribe = await subscription?.catch(() => undefined);
      await unsubscribe?.();
      await queue.close().catch((error) => logger.warn({ err: error }, "document search queue did not close"));
    },
  };
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

const SearchArgs = z.object({
  query: z.string().min(1).max(2000).describe("what to look for, in the words the documents would use"),
  limit: z.number().int().min(1).max(10).default(5).describe("how many passages to return"),
});

/** `documents_search`: the signed-in user's indexed documents, never anyone else's. */
export function documentsToolset(search: DocumentSearch | undefined, userId: string, signal?: AbortSignal): ToolSet {
  if (!search) return {};
  return {
    documents_search: tool({
      description:
        "Search the user's own uploaded and indexed documents; returns the best matching passages with the document's name.",
      inputSchema: SearchArgs,
      execute: async ({ query, limit }) => {
        try {
          const results = await search.search(userId, query, limit, signal);
          return {
            results: results.map((hit) => ({
              document: hit.name,
              object_id: hit.object_id,
              text: hit.text,
              score: hit.score,
            })),
          };
        } catch (error) {
          // Thrown errors become tool-error parts: the model sees the reason and the turn goes on.
          throw new Error(error instanceof DocumentSearchError ? error.message : "document search failed");
        }
      },
    }),
  };
}
