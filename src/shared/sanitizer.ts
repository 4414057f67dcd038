import { Elysia } from "elysia";
import { ServiceError } from "./errors";

/**
 * The input sanitizer every service applies to what clients send: HTTP bodies and query strings
 * (`sanitizer()` below, on every service's routes) and device WebSocket frames (the chat gateway's
 * `socket.ts`, right after JSON.parse). One policy, everywhere:
 * - text: C0/C1 control characters (except tab, line feed, carriage return), DEL, the BOM and the
 *   bidirectional embedding/override/isolate controls ("Trojan Source") are removed; lone UTF-16
 *   surrogates become U+FFFD. Zero-width joiners stay (emoji need them).
 * - object keys: one with a control character, or `__proto__`/`constructor`/`prototype`, is rejected
 *   (422): keys come from our schemas, so such a key is never legitimate.
 * - nesting deeper than `maxDepth`, or a body larger than `maxBodyBytes`, is rejected (422 / 413).
 * - unexpected fields: every body schema is a `z.strictObject` (or `.strict()`), so Elysia answers 422.
 * - bodies are JSON: any other content type is refused (415) before it is parsed.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const STRIPPED = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_IN_KEY = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export interface SanitizeOptions {
  /** Deepest nesting accepted (objects and arrays). */
  maxDepth?: number;
}

/** Any character the policy strips, or any surrogate (lone ones are replaced): the rest is copied as is. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const NEEDS_WORK = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF\uD800-\uDFFF]/;

/** Removes the characters the policy strips from one string. */
export function sanitizeText(text: string): string {
  // Most text has nothing to strip: one scan instead of two replacements (device frames run here).
  if (!NEEDS_WORK.test(text)) return text;
  return text.replace(LONE_SURROGATE, "\uFFFD").replace(STRIPPED, "");
}

/** Sanitizes every string in a JSON-like value; throws a 422 ServiceError for bad keys or depth. */
export function sanitizeValue<T>(value: T, options: SanitizeOptions = {}): T {
  try {
    return walk(value, 0, options.maxDepth ?? 32) as T;
  } catch (error) {
    if (error instanceof Refusal) throw rejected(error.path, error.message);
    throw error;
  }
}

/** A refused value deep inside; its path is built while unwinding, so accepted values never pay for it. */
class Refusal extends Error {
  /** Keys and indexes from the root down to the refused value, gathered innermost first. */
  private readonly steps: Array<string | number> = [];

  within(step: string | number): Refusal {
    this.steps.push(step);
    return this;
  }

  get path(): string {
    let path = "";
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const step = this.steps[i]!;
      path = typeof step === "number" ? `${path}[${step}]` : path ? `${path}.${step}` : step;
    }
    return path;
  }
}

function walk(value: unknown, depth: number, maxDepth: number): unknown {
  if (typeof value === "string") return sanitizeText(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= maxDepth) throw new Refusal(`nesting deeper than ${maxDepth} levels`);
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let index = 0; index < value.length; index++) {
      try {
        out[index] = walk(value[index], depth + 1, maxDepth);
      } catch (error) {
        throw error instanceof Refusal ? error.within(index) : error;
      }
    }
    return out;
  }
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key) || CONTROL_IN_KEY.test(key)) throw new Refusal("field name not allowed");
    try {
      out[key] = walk(value[key], depth + 1, maxDepth);
    } catch (error) {
      throw error instanceof Refusal ? error.within(key) : error;
    }
  }
  return out;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const unsupportedMediaType = () =>
  new ServiceError("unsupported_media_type", 415, "request bodies must be application/json");

function rejected(path: string, message: string): ServiceError {
  return new ServiceError("validation_failed", 422, "request failed validation", {}, [{ path, message }]);
}

export interface SanitizerOptions extends SanitizeOptions {
  /** A tighter body limit for the routes after it than the global MAX_BODY_BYTES. */
  maxBodyBytes?: number;
}

/**
 * Applies the policy to the body and query of every route registered after it, before schema
 * validation. Scoped: it covers the plugin that uses it.
 */
export function sanitizer(options: SanitizerOptions = {}) {
  const tooLarge = (size: number) => {
    if (options.maxBodyBytes !== undefined && size > options.maxBodyBytes) {
      throw new ServiceError("payload_too_large", 413, `request body exceeds ${options.maxBodyBytes} bytes`);
    }
  };
  return new Elysia()
    .onParse({ as: "scoped" }, (_context, contentType) => {
      // Returning nothing leaves a JSON body to Elysia's own parser.
      if (contentType && contentType.toLowerCase() !== "application/json") throw unsupportedMediaType();
    })
    .onTransform({ as: "scoped" }, (context) => {
      if (context.body !== undefined) {
        const declared = Number(context.request.headers.get("content-length") ?? Number.NaN);
        if (Number.isFinite(declared)) tooLarge(declared);
        // Depth is checked before a body of unknown length is measured: JSON.stringify of a body
        // nested thousands deep overflows the stack.
        context.body = sanitizeValue(context.body, options);
        if (!Number.isFinite(declared) && options.maxBodyBytes !== undefined) {
          tooLarge(Buffer.byteLength(JSON.stringify(context.body) ?? ""));
        }
      }
      context.query = sanitizeValue(context.query, options);
    });
}
