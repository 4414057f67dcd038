import { conflict, unprocessable } from "../shared/errors";
import type { ClientInfo, PublicVerbArgs } from "../shared/verb";
import { type AuthContext, ipGate, normalizeEmail, toUser } from "./context";
import { newUserKey, wrapUserKey } from "./crypto";
import type { RegisterInput, Session } from "./model";
import { passwordProblem } from "./passwords";
import { startSession } from "./sessions";
import { users } from "./tables";

/** Creates an account with its wrapped encryption key and signs it in. */
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
  const [row] = await ctx.db
    .insert(users)
    .values({
      id,
      email,
      displayName: input.display_name ?? null,
      passwordHash,
      encryptionKey: await wrapUserKey(ctx.secrets, id, newUserKey()),
    })
    .onConflictDoNothing()
    .returning();
  if (!row) throw conflict("email_taken", "an account with this e-mail already exists");
  return { user: toUser(row), ...(await startSession(ctx, row)) };
}
