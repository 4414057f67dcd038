import type { VerbArgs } from "../shared/verb";
import type { AuthContext } from "./context";
import type { LogoutInput } from "./model";
import { endAccessTokens, revokeSessions } from "./sessions";

/**
 * Ends the caller's session (or all their sessions with `all`): its refresh tokens are revoked
 * and its access tokens stop working in every service at once.
 */
export async function logout({ ctx, user, input }: VerbArgs<AuthContext, LogoutInput>) {
  if (!input?.all && !user.sessionId) return { revoked: 0 };
  const ended = await revokeSessions(ctx.db, {
    userId: user.userId,
    reason: "logout",
    ...(input?.all ? {} : { familyId: user.sessionId }),
  });
  // The caller's own session ends even if its refresh tokens were already gone.
  const sessions = [...new Set([...ended, ...(user.sessionId ? [user.sessionId] : [])])];
  await endAccessTokens(ctx, sessions, "logout");
  return { revoked: sessions.length };
}
