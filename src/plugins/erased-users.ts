import { createHash } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import type { Tx } from "./context";
import { erasedUsers } from "./tables";

/** The class of the per-user advisory locks of the plugins service (the object is a hash of the user id). */
const USER_LOCK_CLASS = 0x706c_7567; // "plug"

/**
 * Takes the user's transaction-scoped advisory lock: shared by every payment completed for them
 * (they never wait for each other), exclusive for the erasure of their data. An erasure therefore
 * either waits for a completion in flight to commit, and then finds its purchase (and cancels its
 * subscription), or commits first, and the completion finds the user erased (the check after the
 * lock is a fresh snapshot). Taken first in both transactions, before any row lock.
 */
export async function lockUser(tx: Tx, userId: string, mode: "shared" | "exclusive"): Promise<void> {
  await tx.execute(
    mode === "shared"
      ? sql`select pg_advisory_xact_lock_shared(${USER_LOCK_CLASS}, hashtext(${userId}))`
      : sql`select pg_advisory_xact_lock(${USER_LOCK_CLASS}, hashtext(${userId}))`,
  );
}

/** What `erased_users` keeps of a user: the hex SHA-256 of their id, not the id. */
export const erasedUserKey = (userId: string): string => createHash("sha256").update(userId).digest("hex");

/** Records that the user's data is erased, in the erasure's transaction. */
export async function recordErased(tx: Tx, userId: string): Promise<void> {
  await tx
    .insert(erasedUsers)
    .values({ userIdSha256: erasedUserKey(userId) })
    .onConflictDoNothing();
}

/** True once the erasure of the user's data is committed. */
export async function isErased(tx: Tx, userId: string): Promise<boolean> {
  const [row] = await tx
    .select({ key: erasedUsers.userIdSha256 })
    .from(erasedUsers)
    .where(eq(erasedUsers.userIdSha256, erasedUserKey(userId)));
  return row !== undefined;
}
