import { ServiceError } from "../shared/errors";

export const invalidCursor = () => new ServiceError("invalid_cursor", 422, "the cursor is not valid");

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Keyset cursors, opaque to clients: the sort key and id of the last row of a page. */
export function encodeCursor(key: string, id: string): string {
  return Buffer.from(`${key}|${id}`).toString("base64url");
}

export function decodeCursor(cursor: string): { key: string; id: string } {
  const [key, id, extra] = Buffer.from(cursor, "base64url").toString().split("|");
  if (!key || !id || extra !== undefined || !UUID.test(id)) throw invalidCursor();
  return { key, id };
}

/** How `encodeCursor` writes a timestamp key: `Date#toISOString` of a four-digit year. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * A cursor whose key is a timestamp. Only the form `encodeCursor` writes is accepted, and only a
 * year PostgreSQL takes: `new Date` also reads `+275760-09-13` or year 0, which the query would
 * send on and the database refuse (a 500 instead of this 422).
 */
export function decodeTimeCursor(cursor: string): { at: Date; id: string } {
  const { key, id } = decodeCursor(cursor);
  const at = new Date(key);
  if (!ISO_INSTANT.test(key) || Number.isNaN(at.getTime()) || at.toISOString() !== key) throw invalidCursor();
  if (at.getUTCFullYear() < 1) throw invalidCursor();
  return { at, id };
}
