/** The kinds of rows the import creates, each with its own id space. */
export type ImportedEntity = "user" | "session" | "refresh_token" | "agent_config" | "memory";

/**
 * The id a row imported from the monolith gets: an RFC 9562 name-based UUID (version 8, the
 * SHA-256 variant of version 5) of the entity and its legacy id. The same legacy row always maps
 * to the same id, so a re-run finds what an earlier run wrote without any legacy-id column, and
 * references between files (a token's user) resolve without a lookup table.
 */
export function legacyUuid(entity: ImportedEntity, legacyId: string): string {
  const digest = new Bun.CryptoHasher("sha256").update(`adiuva-import:${entity}:${legacyId}`).digest();
  const bytes = new Uint8Array(digest.buffer, digest.byteOffset, 16);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A user's id here. A monolith that keyed users by UUID keeps them: its access tokens name the user
 * by that id (`sub`), and they stay valid during the HS256 window (docs/migration.md), so the user
 * must be found under it. Other legacy ids are derived.
 */
export function userIdFor(legacyId: string): string {
  return UUID.test(legacyId) ? legacyId.toLowerCase() : legacyUuid("user", legacyId);
}
