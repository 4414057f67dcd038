import { DrizzleQueryError } from "drizzle-orm/errors";

/*
 * What a log line may carry. An error is reduced to what names the failure (its type, message,
 * code, and the table, column and constraint PostgreSQL reports) and never the values involved:
 * postgres.js keeps the bound parameters on its errors, drizzle writes them into its message, and
 * PostgreSQL's `detail` quotes the offending row. Then every line, whatever it holds, loses fields
 * with secret names at any depth and any text shaped like a secret.
 */

const CENSOR = "[redacted]";
const MAX_DEPTH = 4;
const MAX_MESSAGE_CHARS = 2000;

/** Fields of an error kept in logs: codes and names, never values. */
const ERROR_FIELDS = [
  "code",
  "errno",
  "syscall",
  "severity",
  "routine",
  // postgres.js
  "schema_name",
  "table_name",
  "column_name",
  "constraint_name",
  // PGlite
  "schema",
  "table",
  "column",
  "constraint",
  // HTTP clients (AI SDK, Stripe)
  "status",
  "statusCode",
  "isRetryable",
] as const;

/** An Error as a plain object of safe fields, its cause and aggregated errors included. */
export function serializeError(value: unknown, depth = 0): unknown {
  if (!(value instanceof Error)) return value;
  const fields = value as unknown as Record<string, unknown>;
  // Some classes (drizzle's DrizzleQueryError) leave `name` at "Error".
  const type = value.name && value.name !== "Error" ? value.name : value.constructor?.name || "Error";
  const out: Record<string, unknown> = { type, message: errorMessage(value) };
  for (const field of ERROR_FIELDS) {
    const item = fields[field];
    if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") out[field] = item;
  }
  // Bun sets a numeric `line` and `column` on every error: a source position, not PGlite's column name.
  if (typeof out.column !== "string") delete out.column;
  // The stack's first line repeats the message; only the frames are kept from it.
  const frames = value.stack?.split("\n").filter((line) => /^\s+at /.test(line)) ?? [];
  if (frames.length > 0) out.stack = [`${type}: ${out.message}`, ...frames].join("\n");
  if (depth < MAX_DEPTH) {
    const cause = nested(value.cause, depth);
    if (cause !== undefined) out.cause = cause;
    const errors = fields.errors;
    if (Array.isArray(errors)) out.errors = errors.slice(0, 5).map((item) => nested(item, depth) ?? "[value]");
  }
  return out;
}

/** A cause or aggregated error: errors and text only; any other value could be a row. */
function nested(value: unknown, depth: number): unknown {
  if (value instanceof Error) return serializeError(value, depth + 1);
  return typeof value === "string" ? value : undefined;
}

function errorMessage(error: Error): string {
  // drizzle's message is `Failed query: <sql>\nparams: <values>`: the statement, without its values.
  const message = error instanceof DrizzleQueryError ? `Failed query: ${error.query}` : error.message;
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
}

/** pino's `formatters.log`: every Error in the logged object, at any depth, becomes `serializeError`'s. */
export function withSafeErrors(object: Record<string, unknown>): Record<string, unknown> {
  return replaceErrors(object, 0) as Record<string, unknown>;
}

function replaceErrors(value: unknown, depth: number): unknown {
  if (value instanceof Error) return serializeError(value);
  if (depth >= MAX_DEPTH || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    const items = value.map((item) => replaceErrors(item, depth + 1));
    return items.some((item, index) => item !== value[index]) ? items : value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const replaced = replaceErrors(item, depth + 1);
    if (replaced !== item) {
      copy ??= { ...(value as Record<string, unknown>) };
      copy[key] = replaced;
    }
  }
  return copy ?? value;
}

/** Field names (lowercased, separators dropped) whose values never reach a log, at any depth. */
const SECRET_NAME =
  /(?:password|passwd|passphrase|token|secret|key|cookie|authorization|email|hash)$|^(?:params|parameters)$/;
const isSecretName = (name: string) => SECRET_NAME.test(name.toLowerCase().replace(/[^a-z0-9]/g, ""));

/** Secrets recognised by their shape, in the order they are replaced. */
const TEXT_RULES: Array<[RegExp, string | ((match: string) => string)]> = [
  // drizzle's failed-query message: the values follow `params:` to the end.
  [/\nparams: [\s\S]*/g, `\nparams: ${CENSOR}`],
  // argon2 PHC strings: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
  [/\$argon2(?:id|i|d)\$(?:v=\d+\$)?(?:[a-z]=\d+,?)*(?:\$[A-Za-z0-9+/.=-]*){0,2}/g, "[redacted:argon2]"],
  // Credentials in URLs: postgres://user:password@host
  [/(\/\/)[^\s/@:]*:[^\s/@]+@/g, `$1${CENSOR}@`],
  // Authorization values; the length keeps prose ("basic validation") out.
  [/\b([Bb]earer|Basic)\s+[A-Za-z0-9._~+/=-]{16,}/g, `$1 ${CENSOR}`],
  [/\beyJ[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*){0,2}/g, "[redacted:jwt]"],
  [/\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=]+/g, "[redacted:secret]"],
  [/[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, "[redacted:email]"],
  // Long base64 or base64url runs mixing cases and digits: keys, tokens, ciphertexts. Paths, hex
  // digests and identifiers rarely mix all three.
  [
    /[A-Za-z0-9+/_-]{40,}={0,2}/g,
    (match) => (/[A-Z]/.test(match) && /[a-z]/.test(match) && /[0-9]/.test(match) ? "[redacted:secret]" : match),
  ],
];

/** `text` with every secret-shaped part replaced. */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of TEXT_RULES) {
    out = typeof replacement === "string" ? out.replace(pattern, replacement) : out.replace(pattern, replacement);
  }
  return out;
}

/** `value` with secret-named fields censored and secret-shaped text replaced, at any depth. */
export function redactValue(value: unknown): unknown {
  if (typeof value === "string") return redactText(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [name, item] of Object.entries(value)) {
    out[name] = isSecretName(name) && item !== null && item !== "" ? CENSOR : redactValue(item);
  }
  return out;
}

/** Cheap test ruling out most lines (access logs) before any parsing. */
const SUSPECT =
  /\$argon2|eyJ|bearer\s|basic\s|@|params: |sk_|rk_|whsec_|[A-Za-z0-9+/_-]{40}|"[^"]*(?:password|passwd|passphrase|token|secret|key|cookie|authorization|email|hash|params|parameters)"\s*:/i;

/** pino's `hooks.streamWrite`: one serialised JSON line in, the same line redacted out. */
export function redactLine(line: string): string {
  if (!SUSPECT.test(line)) return line;
  const end = line.endsWith("\n") ? "\n" : "";
  try {
    return `${JSON.stringify(redactValue(JSON.parse(line)))}${end}`;
  } catch {
    return redactText(line);
  }
}
