import { ServiceError } from "../shared/errors";

export const invalidCursor = () => new ServiceError("invalid_cursor", 422, "the cursor is not valid");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * Keyset cursors, opaque to clients: the order they belong to, the sort key and the id of the last
 * row of a page. A cursor of one order used with another is refused rather than misread.
 */
export const encodeCursor = (order: string, key: string, id: string) =>
  Buffer.from(`${order}|${key}|${id}`).toString("base64url");

function decode(cursor: string, order: string): { key: string; id: string } {
  const [given, key, id, extra] = Buffer.from(cursor, "base64url").toString().split("|");
  if (given !== order || !key || !id || extra !== undefined || !UUID.test(id)) throw invalidCursor();
  return { key, id };
}

/** A cursor whose key is a count (installs): a non-negative integer PostgreSQL's integer holds. */
export function decodeCountCursor(cursor: string, order: string): { value: number; id: string } {
  const { key, id } = decode(cursor, order);
  const value = Number(key);
  if (!/^\d{1,10}$/.test(key) || value > 2_147_483_647) throw invalidCursor();
  return { value, id };
}

/** A cursor whose key is an average rating, 0 (none yet) to 5, written as JavaScript writes a number. */
export function decodeRatingCursor(cursor: string, order: string): { value: number; id: string } {
  const { key, id } = decode(cursor, order);
  const value = Number(key);
  if (!Number.isFinite(value) || value < 0 || value > 5 || String(value) !== key) throw invalidCursor();
  return { value, id };
}

/**
 * A cursor whose key is a time, in the one form `toISOString` writes and of a year PostgreSQL takes
 * (`new Date` also reads `+275760-09-13` or year 0, which the database would refuse: a 500).
 */
export function decodeTimeCursor(cursor: string, order: string): { at: Date; id: string } {
  const { key, id } = decode(cursor, order);
  const at = new Date(key);
  if (!ISO_INSTANT.test(key) || Number.isNaN(at.getTime()) || at.toISOString() !== key) throw invalidCursor();
  if (at.getUTCFullYear() < 1) throw invalidCursor();
  return { at, id };
}
