import { inArray } from "drizzle-orm";
import { users } from "../auth/tables";
import type { Database } from "../shared/db";
import { userIdFor } from "./ids";

/**
 * The users a batch refers to, by legacy id: the id each maps to, and whether auth has it (imported
 * by users.jsonl, in this run or an earlier one).
 */
export async function knownUsers(tx: Database, legacyIds: string[]) {
  const ids = new Map(legacyIds.map((legacyId) => [legacyId, userIdFor(legacyId)] as const));
  const found = new Set(
    (
      await tx
        .select({ id: users.id })
        .from(users)
        .where(inArray(users.id, [...new Set(ids.values())]))
    ).map((row) => row.id),
  );
  return {
    /** The auth user id of a legacy user, or undefined when auth has no such user. */
    idOf: (legacyId: string): string | undefined => {
      const id = ids.get(legacyId) ?? userIdFor(legacyId);
      return found.has(id) ? id : undefined;
    },
  };
}

export const missingUser = (legacyId: string) => ({ skipped: `no imported user with id ${legacyId}` });
