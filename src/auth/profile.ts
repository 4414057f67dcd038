import { eq } from "drizzle-orm";
import { forbidden, notFound, unprocessable } from "../shared/errors";
import type { ClientInfo, VerbArgs } from "../shared/verb";
import { type AuthContext, normalizeEmail, toUser } from "./context";
import { unwrapUserKey } from "./crypto";
import { requestEmailChange } from "./email-verify";
import { passwordAttempt } from "./login";
import { enqueueMail } from "./mail/outbox";
import type { EncryptionKey, UpdateMeInput, User } from "./model";
import { passwordProblem } from "./passwords";
import { endAccessTokens, revokeSessions } from "./sessions";
import { users } from "./tables";

async function loadUser(ctx: AuthContext, userId: string) {
  const [row] = await ctx.db.select().from(users).where(eq(users.id, userId));
  // A valid token for a deleted account: the account is gone, as any other missing resource.
  if (!row) throw notFound("user");
  return row;
}

export async function getMe({ ctx, user }: VerbArgs<AuthContext>): Promise<User> {
  return toUser(await loadUser(ctx, user.userId));
}

/**
 * Updates the profile; a password change or a change of address needs the current password. A
 * password change ends every other session; a new address takes effect only once the link mailed
 * to it is followed (email-verify.ts), so the answer still shows the old one. The current password
 * is checked as a sign-in of the account from `ip`, so a stolen access token guesses it no faster
 * than a login could.
 */
export async function updateMe({
  ctx,
  user,
  input,
  client,
}: VerbArgs<AuthContext, UpdateMeInput> & { client: ClientInfo }): Promise<User> {
  const row = await loadUser(ctx, user.userId);
  const changes: Partial<typeof users.$inferInsert> = { updatedAt: new Date() };
  if (input.display_name !== undefined) changes.displayName = input.display_name;
  if (input.locale !== undefined) changes.locale = input.locale;
  if (input.new_password !== undefined || input.email !== undefined) {
    const current = input.current_password ?? "";
    const who = { email: normalizeEmail(row.email), ip: client.ip };
    if (!(await passwordAttempt(ctx, who, () => ctx.passwords.verify(current, row.passwordHash)))) {
      throw forbidden("invalid_credentials", "the current password is wrong");
    }
  }
  if (input.new_password !== undefined) {
    const problem = passwordProblem(input.new_password, row.email);
    if (problem) throw unprocessable(problem, [{ path: "new_password", message: problem }]);
    changes.passwordHash = await ctx.passwords.hash(input.new_password);
  }
  const newEmail = input.email === undefined ? undefined : normalizeEmail(input.email);
  if (newEmail !== undefined && newEmail !== normalizeEmail(row.email)) {
    await requestEmailChange(ctx, { ...row, locale: changes.locale ?? row.locale }, newEmail);
  }
  const updated = await ctx.db.transaction(async (tx) => {
    const [after] = await tx.update(users).set(changes).where(eq(users.id, row.id)).returning();
    if (after && input.new_password !== undefined) {
      await enqueueMail(tx, {
        userId: row.id,
        to: after.email,
        template: "password_changed",
        locale: after.locale,
        payload: {},
      });
    }
    return after;
  });
  if (input.new_password !== undefined) {
    const ended = await revokeSessions(ctx.db, {
      userId: row.id,
      reason: "password_changed",
      exceptFamilyId: user.sessionId,
    });
    await endAccessTokens(ctx, ended, "password_changed");
  }
  return toUser(updated ?? row);
}

/** The caller's own data key, unwrapped; never logged. */
export async function getEncryptionKey({ ctx, user }: VerbArgs<AuthContext>): Promise<EncryptionKey> {
  const row = await loadUser(ctx, user.userId);
  const key = await unwrapUserKey(ctx.secrets, row.id, row.encryptionKey);
  return { key: Buffer.from(key).toString("base64"), algorithm: "AES-256-GCM", encoding: "base64" };
}
