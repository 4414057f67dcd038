import type { z } from "zod";
import type { Unsubscribe } from "./bus/bus";
import type { JobQueue } from "./jobs";
import type { Platform } from "./platform";
import { withTimeout } from "./timeout";

/** What a request job carries besides its question: where and under which id to answer, and until when. */
export interface RequestJob {
  requestId: string;
  /** The asking instance: the answer goes to its reply channel. */
  replyTo: string;
  /** Epoch ms after which nobody waits for the answer. */
  expiresAt: number;
}

/** How one request ended. */
export type RequestOutcome<Reply> =
  | { kind: "answered"; reply: Reply }
  /** Not queued, answered unreadably, stopped by its signal, or the requester closed. */
  | { kind: "failed"; reason: string }
  /** Nobody answered in time; the job was withdrawn from the queue. */
  | { kind: "unanswered" };

export interface QueueRequester<Job extends RequestJob, Reply> {
  /** Queues `question` under a fresh request id and waits at most the requester's timeout for its answer. */
  ask(question: Omit<Job, keyof RequestJob>, signal?: AbortSignal): Promise<RequestOutcome<Reply>>;
  /** Ends every wait (`failed: closing`), stops listening and closes the queue. */
  close(): Promise<void>;
}

export interface QueueRequesterOptions<Job extends RequestJob, Reply> {
  platform: Platform;
  queue: JobQueue<Job>;
  /** This instance's reply channel for this kind of request. */
  replyChannel: string;
  replySchema: z.ZodType<Reply>;
  timeoutMs: number;
}

/** Longest a close waits for Redis to take the unsubscribe (while Redis reconnects it would wait for it). */
const UNSUBSCRIBE_WAIT_MS = 250;

/**
 * Asking another service a question over the internal Redis: the question is a job on a shared
 * queue (any replica of the answering service takes it), the answer is published on the asking
 * instance's reply channel (subscribed once, on first use) and matched by request id. A question
 * nobody answered in time, or whose asker stopped waiting, is withdrawn from the queue, so a replica
 * that comes later does not run it for nobody. Used by the chat's document search and plugin lookup.
 */
export function createQueueRequester<Job extends RequestJob, Reply extends { requestId: string }>(
  options: QueueRequesterOptions<Job, Reply>,
): QueueRequester<Job, Reply> {
  const { platform, queue, replyChannel, replySchema, timeoutMs } = options;
  const pending = new Map<string, (outcome: RequestOutcome<Reply>) => void>();
  let replies: Promise<Unsubscribe> | undefined;

  const onReply = (message: string) => {
    const value = safeJson(message);
    const parsed = replySchema.safeParse(value);
    if (parsed.success) {
      pending.get(parsed.data.requestId)?.({ kind: "answered", reply: parsed.data });
      return;
    }
    // An answer this side cannot read still ends its wait: the other service is there, its reply is not usable.
    const requestId = (value as { requestId?: unknown } | undefined)?.requestId;
    if (typeof requestId === "string") pending.get(requestId)?.({ kind: "failed", reason: "unreadable reply" });
  };

  const listen = () => {
    replies ??= platform.bus.subscribe(replyChannel, onReply).catch((error) => {
      replies = undefined;
      throw error;
    });
    return replies;
  };

  return {
    async ask(question, signal) {
      await listen();
      const requestId = crypto.randomUUID();
      const answered = new Promise<RequestOutcome<Reply>>((resolve) => {
        const end = (outcome: RequestOutcome<Reply>) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", aborted);
          pending.delete(requestId);
          if (outcome.kind !== "answered") void queue.remove(requestId).catch(() => false);
          resolve(outcome);
        };
        const timer = setTimeout(() => end({ kind: "unanswered" }), timeoutMs);
        const aborted = () => end({ kind: "failed", reason: "stopped" });
        if (signal?.aborted) aborted();
        else signal?.addEventListener("abort", aborted, { once: true });
        if (!signal?.aborted) pending.set(requestId, end);
      });
      if (!pending.has(requestId)) return answered;
      const job = { ...question, requestId, replyTo: platform.instanceId, expiresAt: Date.now() + timeoutMs } as Job;
      await queue.add(requestId, job).catch((error: Error) => {
        pending.get(requestId)?.({ kind: "failed", reason: `not queued: ${error.message}` });
      });
      return answered;
    },
    async close() {
      for (const end of [...pending.values()]) end({ kind: "failed", reason: "closing" });
      const unsubscribed = (async () => (await replies)?.())().catch(() => {});
      await withTimeout(unsubscribed, UNSUBSCRIBE_WAIT_MS, "reply channel unsubscribe").catch(() => {});
      await queue.close();
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
