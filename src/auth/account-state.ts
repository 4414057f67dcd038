import { eq, sql } from "drizzle-orm";
import type { Database } from "../shared/db";
import { unauthorized } from "../shared/errors";
import { deletedUsers } from "./tables";

/** The class of the per-account advisory locks (the object is a hash of the user id). */
const ACCOUNT_LOCK_CLASS = 0x6175_7468; // "auth"

/**
 * Takes the account's transaction-scoped advisory lock: shared by every sign-in (they never wait
 * for each other), exclusive for the deletion. A deletion therefore either waits for a sign-in
 * in flight to commit its session, and then ends it with the others, or commits first, and the
 * sign-in sees the account deleted (the check after the lock is a fresh snapshot).
 */
export async function lockAccount(tx: Database, userId: string, mode: "shared" | "exclusive"): Promise<void> {
  await tx.execute(
    mode === "shared"
      ? sql`select pg_advisory_xact_lock_shared(${ACCOUNT_LOCK_CLASS}, hashtext(${userId}))`
      : sql`select pg_advisory_xact_lock(${ACCOUNT_LOCK_CLASS}, hashtext(${userId}))`,
  );
}

/** True once the account's deletion is committed (its row may still exist while services erase). */
export async function isDeleted(db: Database, userId: string): Promise<boolean> {
  const [row] = await db.select({ id: deletedUsers.userId }).from(deletedUsers).where(eq(deletedUsers.userId, userId));
  return row !== undefined;
}

/**
 * Inside the transaction that starts a session: waits for a deletion in progress and refuses a
 * deleted account with the same answer as a wrong password.
 */
export async function refuseDeletedAccount(tx: Database, userId: string): Promise<void> {
  await lockAccount(tx, userId, "shared");
  if (await isDeleted(tx, userId)) throw unauthorized("invalid_credentials", "invalid e-mail or password");
}
