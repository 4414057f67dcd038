import type { AuthUser } from "../shared/auth/verifier";
import type { AuthContext } from "./context";
import type { LogoutInput } from "./model";
import { revokeSessions } from "./sessions";

/**
 * Revokes the refresh tokens of the caller's session (or of all their sessions with `all`).
 * Access tokens already issued stay valid until they expire (ACCESS_TOKEN_TTL_S): they are stateless.
 */
export async function logout({ ctx, user, input }: { ctx: AuthContext; user: AuthUser; input: LogoutInput }) {
  if (!input?.all && !user.sessionId) return { revoked: 0 };
  const revoked = await revokeSessions(ctx.db, {
    userId: user.userId,
    reason: "logout",
    ...(input?.all ? {} : { familyId: user.sessionId }),
  });
  return { revoked };
}
