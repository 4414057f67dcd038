import { z } from "zod";
import { type JobQueue, openSharedJobQueue } from "./jobs";
import type { Platform } from "./platform";

/**
 * The chat agent's `documents_search` tool, answered by the storage service, which alone reads its
 * schema and its vector index. The two services never call each other over HTTP: the chat instance
 * running the turn puts the search on this queue and waits on its own reply channel; any storage
 * replica runs it for the job's user (the one whose token the chat turn verified) and publishes the
 * result there. No token crosses: the queue lives on the internal Redis, as the journey relay's does.
 */
export const DOCUMENT_SEARCH_QUEUE = "storage-document-search";

export const DocumentSearchJob = z.object({
  userId: z.string().min(1),
  query: z.string().min(1).max(2000),
  limit: z.number().int().min(1).max(20),
  /** The chat instance waiting; the reply goes to its channel. */
  replyTo: z.string().min(1),
  requestId: z.string().min(1),
  /** Epoch ms after which nobody waits any more: the storage replica drops the job. */
  expiresAt: z.number(),
});
export type DocumentSearchJob = z.infer<typeof DocumentSearchJob>;

export const DocumentSearchHit = z.object({
  object_id: z.string(),
  name: z.string(),
  score: z.number(),
  text: z.string(),
});
export type DocumentSearchHit = z.infer<typeof DocumentSearchHit>;

export const DocumentSearchReply = z.object({
  requestId: z.string(),
  results: z.array(DocumentSearchHit).optional(),
  error: z.string().optional(),
});
export type DocumentSearchReply = z.infer<typeof DocumentSearchReply>;

/** One attempt: a search nobody answered in time is not worth repeating behind the turn's back. */
export const openDocumentSearchQueue = (platform: Platform) =>
  openSharedJobQueue<DocumentSearchJob>(platform, DOCUMENT_SEARCH_QUEUE, { attempts: 1 });

export type DocumentSearchQueue = JobQueue<DocumentSearchJob>;
