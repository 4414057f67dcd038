import { type ToolSet, tool } from "ai";
import { z } from "zod";
import { type DocumentSearchHit, DocumentSearchReply, openDocumentSearchQueue } from "../../shared/document-search";
import type { Logger } from "../../shared/logger";
import type { Platform } from "../../shared/platform";
import { createQueueRequester } from "../../shared/queue-request";

/** Thrown when no storage replica answered in time, or it answered with a failure. */
export class DocumentSearchError extends Error {
  override name = "DocumentSearchError";
}

export interface DocumentSearch {
  search(userId: string, query: string, limit: number, signal?: AbortSignal): Promise<DocumentSearchHit[]>;
  close(): Promise<void>;
}

/**
 * The chat side of document search: a question to any storage replica over the internal queue
 * (src/shared/queue-request.ts), answered on this instance's reply channel within `timeoutMs`.
 */
export function createDocumentSearch(platform: Platform, logger: Logger, timeoutMs: number): DocumentSearch {
  const requests = createQueueRequester({
    platform,
    queue: openDocumentSearchQueue(platform),
    replyChannel: platform.keys.documentSearchReplies(platform.instanceId),
    replySchema: DocumentSearchReply,
    timeoutMs,
  });
  return {
    async search(userId, query, limit, signal) {
      const outcome = await requests.ask({ userId, query, limit }, signal);
      if (outcome.kind === "unanswered") throw new DocumentSearchError("document search is unavailable right now");
      if (outcome.kind === "failed") {
        throw new DocumentSearchError(
          outcome.reason === "stopped" ? "the turn was stopped" : "document search is unavailable right now",
        );
      }
      const { error, results } = outcome.reply;
      if (error || !results) throw new DocumentSearchError(error ?? "the document search failed");
      return results;
    },
    async close() {
      await requests.close().catch((error) => logger.warn({ err: error }, "document search queue did not close"));
    },
  };
}

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
