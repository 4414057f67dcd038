import { ServiceError } from "../shared/errors";
import { sanitizeText } from "../shared/sanitizer";
import type { ChatContext } from "./model";

/**
 * The shared sanitizer's policy (control and bidi-override characters removed) plus what chat adds:
 * NFC, so the length limit counts what the model sees, \r\n -> \n, surrounding whitespace trimmed.
 */
export function cleanText(text: string): string {
  return sanitizeText(text.normalize("NFC")).replace(/\r\n?/g, "\n").trim();
}

/** The chat message as the model will see it; rejects empty or over-long input with a 422. */
export function sanitizeMessage(text: string, maxChars: number): string {
  const clean = cleanText(text);
  if (clean.length === 0) throw new ServiceError("empty_message", 422, "the message is empty");
  if (clean.length > maxChars) {
    throw new ServiceError("message_too_long", 422, `the message exceeds ${maxChars} characters`);
  }
  return clean;
}

/** Cleans every string of the screen context; drops fields that end up empty. */
export function sanitizeContext(context: ChatContext | undefined): ChatContext | undefined {
  if (!context) return undefined;
  const walk = (value: unknown): unknown => {
    if (typeof value === "string") return cleanText(value) || undefined;
    if (value && typeof value === "object") {
      const entries = Object.entries(value).map(([key, inner]) => [key, walk(inner)] as const);
      const kept = entries.filter(([, inner]) => inner !== undefined);
      return kept.length > 0 ? Object.fromEntries(kept) : undefined;
    }
    return value;
  };
  return walk(context) as ChatContext | undefined;
}
