import type { DeviceCallErrorCode } from "../device-rpc";

/**
 * Messages on an instance's inbox channel (`keys.instanceInbox(id)`), subscribed once per instance,
 * alone, or several as a JSON array on its batch channel (`keys.instanceBatchInbox(id)`).
 * `ts` is the sender's clock when published, for the relay lag metric.
 */
export type InboxMessage =
  /** Caller -> owner: deliver a tool call to connection `c`. `from` is the caller's instance. */
  | {
      t: "call";
      c: string;
      id: string;
      from: string;
      user: string;
      name: string;
      args: unknown;
      deadline_ms: number;
      origin: string;
      ts: number;
    }
  /** Caller -> owner: the call ended on the caller's side; tell the device. */
  | { t: "cancel"; c: string; id: string; reason: string; ts: number }
  /** Owner -> caller. */
  | { t: "result"; id: string; ok: true; result: unknown; ts: number }
  | { t: "result"; id: string; ok: false; error: CallFailure; ts: number }
  | { t: "progress"; id: string; progress: number; total?: number; message?: string; ts: number }
  /** Owner -> owner: a newer connection of the same device exists; close connection `id` of `user`. */
  | { t: "evict"; id: string; user: string; ts: number };

export interface CallFailure {
  code: DeviceCallErrorCode;
  message: string;
  /** The device's own code when `code` is `tool_error`. */
  tool_code?: string;
  /** The call never reached the device (its connection is gone here): the caller may route it anew. */
  undelivered?: boolean;
}

export type CallOutcome = Extract<InboxMessage, { t: "result" }>;
export type CallProgress = Extract<InboxMessage, { t: "progress" }>;

/**
 * Hands each inbox message in `text` to `handle`: one message, or a batch of them as a JSON array
 * (`InboxSender`). Whatever is not one of ours is dropped, alone or inside a batch.
 */
export function readInbox(text: string, handle: (message: InboxMessage) => void): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return;
  }
  if (!Array.isArray(value)) {
    if (isInboxMessage(value)) handle(value);
    return;
  }
  for (const item of value) if (isInboxMessage(item)) handle(item);
}

function isInboxMessage(value: unknown): value is InboxMessage {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as InboxMessage).t === "string" &&
    typeof (value as InboxMessage).id === "string"
  );
}
