import { eq } from "drizzle-orm";
import { forbidden, notFound } from "../shared/errors";
import type { ClientInfo, VerbArgs } from "../shared/verb";
import { isDeleted, lockAccount } from "./account-state";
import { type AuthContext, normalizeEmail } from "./context";
import { passwordAttempt } from "./login";
import { enqueueMail } from "./mail/outbox";
import type { AccountDeletion, DeleteAccountInput } from "./model";
import { endAccessTokens, revokeSessions } from "./sessions";
import { dataExports, deletedUsers, emailTokens, users } from "./tables";

/** What the row keeps while the services erase: nothing that names the person or signs them in. */
const scrubbed = (userId: string) => ({
  email: `deleted-${userId}@deleted.invalid`,
  displayName: null,
  // Not a hash of any format: every password check against it fails.
  passwordHash: "!deleted",
});

/**
 * Deletes the caller's account (GDPR art. 17). The password is checked as a sign-in is (lockout
 * included, 403 like a password change). One transaction, under the account's exclusive lock
 * (so no sign-in can slip a session in, see account-state.ts), records the deletion
 * (`deleted_users`), ends every session, drops mailed links and exports, queues the confirmation
 * mail and strips the row of the address, name and password, so the address may sign up again at
 * once. After the commit the access tokens stop working everywhere (device sockets close with
 * 4403) and the `user_deleted` event goes out; the row itself, with the wrapped encryption key, is
 * removed once chat, agent and billing have reported their erasure (lifecycle.ts).
 */
export async function deleteAccount({
  ctx,
  user,
  input,
  client,
}: VerbArgs<AuthContext, DeleteAccountInput> & { client: ClientInfo }): Promise<AccountDeletion> {
  const [row] = await ctx.db.select().from(users).where(eq(users.id, user.userId));
  if (!row || (await isDeleted(ctx.db, row.id))) throw notFound("user");
  const who = { email: normalizeEmail(row.email), ip: client.ip };
  if (!(await passwordAttempt(ctx, who, () => ctx.passwords.verify(input.password, row.passwordHash)))) {
    throw forbidden("invalid_credentials", "the password is wrong");
  }
  const { deletedAt, ended } = await ctx.db.transaction(async (tx) => {
    await lockAccount(tx, row.id, "exclusive");
    const [recorded] = await tx
      .insert(deletedUsers)
      .values({ userId: row.id })
      .onConflictDoNothing()
      .returning({ deletedAt: deletedUsers.deletedAt });
    if (!recorded) {
      // Two requests at once: the first one deleted it.
      const [earlier] = await tx.select().from(deletedUsers).where(eq(deletedUsers.userId, row.id));
      return { deletedAt: earlier?.deletedAt ?? new Date(), ended: [] };
    }
    const ended = await revokeSessions(tx, { userId: row.id, reason: "account_deleted" });
    await tx.delete(emailTokens).where(eq(emailTokens.userId, row.id));
    await tx.delete(dataExports).where(eq(dataExports.userId, row.id));
    await enqueueMail(tx, {
      userId: row.id,
      to: row.email,
      template: "account_deleted",
      locale: row.locale,
      payload: {},
    });
    await tx
      .update(users)
      .set({ ...scrubbed(row.id), updatedAt: new Date() })
      .where(eq(users.id, row.id));
    return { deletedAt: recorded.deletedAt, ended };
  });
  // The caller's own session too, even if its refresh tokens were already gone.
  await endAccessTokens(ctx, [...new Set([...ended, ...(user.sessionId ? [user.sessionId] : [])])], "account_deleted");
  ctx.platform.metrics.counter("auth_account_deletions_total", "Accounts whose deletion was asked for").inc();
  ctx.logger.info({ user_id: row.id }, "account deletion requested");
  ctx.wakeLifecycle();
  return { status: "deleting", deleted_at: deletedAt.toISOString() };
}
