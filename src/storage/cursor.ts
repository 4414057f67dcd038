import { ServiceError } from "../shared/errors";

export const invalidCursor = () => new ServiceError("invalid_cursor", 422, "the cursor is not valid");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A keyset cursor, opaque to clients: the creation time and id of the last object of a page. */
export const encodeCursor = (at: Date, id: string) => Buffer.from(`${at.toISOString()}|${id}`).toString("base64url");

export function decodeCursor(cursor: string): { at: Date; id: string } {
  const [key, id, extra] = Buffer.from(cursor, "base64url").toString().split("|");
  if (!key || !id || extra !== undefined || !UUID.test(id) || !ISO_INSTANT.test(key)) throw invalidCursor();
  const at = new Date(key);
  if (Number.isNaN(at.getTime()) || at.toISOString() !== key || at.getUTCFullYear() < 1) throw invalidCursor();
  return { at, id };
}
