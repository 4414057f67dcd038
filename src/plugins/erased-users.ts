import { createHash } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import type { Tx } from "./context";
import { erasedPlugins, erasedUsers, pluginRows } from "./tables";

/** The class of the per-user advisory locks of the plugins service (the object is a hash of the user id). */
const USER_LOCK_CLASS = 0x706c_7567; // "plug"

/**
 * Takes the user's transaction-scoped advisory lock: shared by every payment completed for them or
 * for a plugin they publish (they never wait for each other), exclusive for the erasure of their
 * data. An erasure therefore either waits for a completion in flight to commit, and then finds its
 * purchase (and cancels its subscription), or commits first, and the completion finds the buyer
 * erased, or the plugin (the check after the lock is a fresh snapshot). Taken first in both
 * transactions, before any row lock; a completion takes its two (buyer, publisher) in id order.
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

/** Records, in the erasure of a developer's data, that each plugin they published is erased with it. */
export async function recordPluginsErased(tx: Tx, developerId: string): Promise<void> {
  await tx
    .insert(erasedPlugins)
    .select(
      tx
        .select({ pluginId: pluginRows.id, erasedAt: sql<Date>`now()`.as("erased_at") })
        .from(pluginRows)
        .where(eq(pluginRows.developerId, developerId)),
    )
    .onConflictDoNothing();
}

/** True once the erasure of the plugin's developer, and so of the plugin, is committed. */
export async function isPluginErased(tx: Tx, pluginId: string): Promise<boolean> {
  const [row] = await tx
    .select({ id: erasedPlugins.pluginId })
    .from(erasedPlugins)
    .where(eq(erasedPlugins.pluginId, pluginId));
  return row !== undefined;
}
