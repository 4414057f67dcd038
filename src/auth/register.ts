import { conflict, unprocessable } from "../shared/errors";
import type { ClientInfo, PublicVerbArgs } from "../shared/verb";
import { deviceNameFrom, localeFrom } from "./client-hints";
import { type AuthContext, ipGate, normalizeEmail, toUser } from "./context";
import { newUserKey, wrapUserKey } from "./crypto";
import { emailVerifyLink, issueEmailToken } from "./email-tokens";
import { enqueueMail } from "./mail/outbox";
import type { RegisterInput, Session } from "./model";
import { passwordProblem } from "./passwords";
import { startSession } from "./sessions";
import { users } from "./tables";

/**
 * Creates an account with its wrapped encryption key and signs it in. The mail asking to confirm
 * the address is written in the same transaction as the account, in the language Accept-Language
 * prefers among those mails exist in.
 */
export async function register({
  ctx,
  input,
  client,
}: PublicVerbArgs<AuthContext, RegisterInput> & { client: ClientInfo }): Promise<Session> {
  await ipGate(ctx, client.ip);
  const email = normalizeEmail(input.email);
  const problem = passwordProblem(input.password, email);
  if (problem) throw unprocessable(problem, [{ path: "password", message: problem }]);
  // Hashing first keeps a taken e-mail as slow as a free one.
  const passwordHash = await ctx.passwords.hash(input.password);
  const id = crypto.randomUUID();
  const locale = localeFrom(client.acceptLanguage);
  const encryptionKey = await wrapUserKey(ctx.secrets, id, newUserKey());
  const row = await ctx.db.transaction(async (tx) => {
    const [created] = await tx
      .insert(users)
      .values({ id, email, displayName: input.display_name ?? null, passwordHash, encryptionKey, locale })
      .onConflictDoNothing()
      .returning();
    if (!created) return undefined;
    const ttlS = ctx.env.EMAIL_VERIFY_TTL_S;
    const token = await issueEmailToken(tx, { userId: id, purpose: "email_verify", email, ttlS });
    await enqueueMail(tx, {
      userId: id,
      to: email,
      template: "email_verify",
      locale,
      payload: { url: emailVerifyLink(ctx, token), expires_hours: Math.max(1, Math.round(ttlS / 3600)) },
    });
    return created;
  });
  if (!row) throw conflict("email_taken", "an account with this e-mail already exists");
  return { user: toUser(row), ...(await startSession(ctx, row, deviceNameFrom(input.device_name, client))) };
}
