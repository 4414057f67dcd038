// The import and the HS256 window name a monolith's user the same way: the derivation lives with
// the other shared code (src/shared/legacy-ids.ts), so the services need nothing of the import.
export { type ImportedEntity, legacyUuid, userIdFor } from "../shared/legacy-ids";
