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

/** A cursor whose key is a timestamp. */
export function decodeTimeCursor(cursor: string): { at: Date; id: string } {
  const { key, id } = decodeCursor(cursor);
  const at = new Date(key);
  if (Number.isNaN(at.getTime())) throw invalidCursor();
  return { at, id };
}
