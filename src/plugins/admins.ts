import type { AuthUser } from "../shared/auth/verifier";
import { forbidden } from "../shared/errors";
import type { PluginsContext } from "./context";

/**
 * Plugin reviewers are named by the deployment (PLUGINS_ADMIN_USER_IDS): there is no role in the
 * token, and a role stored here would need a way to grant it that is itself an admin's.
 */
export const isAdmin = (ctx: PluginsContext, user: AuthUser) => ctx.config.admins.has(user.userId.toLowerCase());

export function requireAdmin(ctx: PluginsContext, user: AuthUser): void {
  if (!isAdmin(ctx, user)) throw forbidden("admin_required", "only a plugin reviewer may do this");
}
