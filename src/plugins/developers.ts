import { eq, sql } from "drizzle-orm";
import type { AuthUser } from "../shared/auth/verifier";
import { conflict, forbidden, notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import type { Developer, RegisterDeveloperInput, UpdateDeveloperInput } from "./model";
import { developers } from "./tables";

type DeveloperRow = typeof developers.$inferSelect;

const developerView = (row: DeveloperRow): Developer => ({
  display_name: row.displayName,
  public_key: row.publicKey,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

/** The caller's developer account, or 403 `developer_required`: publishing starts with registering one. */
export async function requireDeveloper(ctx: PluginsContext, user: AuthUser): Promise<DeveloperRow> {
  const [row] = await ctx.db.select().from(developers).where(eq(developers.userId, user.userId));
  if (!row) {
    throw forbidden("developer_required", "register as a developer first (POST /api/v1/plugins/developers/me)");
  }
  return row;
}

/** Any user may become a developer, once: 409 `already_developer` the second time. */
export async function registerDeveloper({ ctx, user, input }: VerbArgs<PluginsContext, RegisterDeveloperInput>) {
  const [row] = await ctx.db
    .insert(developers)
    .values({ userId: user.userId, displayName: input.display_name, publicKey: input.public_key })
    .onConflictDoNothing()
    .returning();
  if (!row) throw conflict("already_developer", "you are already registered as a developer");
  ctx.logger.info({ user_id: user.userId }, "developer registered");
  return developerView(row);
}

export async function getDeveloper({ ctx, user }: VerbArgs<PluginsContext>) {
  const [row] = await ctx.db.select().from(developers).where(eq(developers.userId, user.userId));
  if (!row) throw notFound("developer account");
  return developerView(row);
}

/** A new display name or key; versions already published keep the key that verified them. */
export async function updateDeveloper({ ctx, user, input }: VerbArgs<PluginsContext, UpdateDeveloperInput>) {
  const [row] = await ctx.db
    .update(developers)
    .set({
      ...(input.display_name !== undefined && { displayName: input.display_name }),
      ...(input.public_key !== undefined && { publicKey: input.public_key }),
      updatedAt: sql`now()`,
    })
    .where(eq(developers.userId, user.userId))
    .returning();
  if (!row) throw notFound("developer account");
  return developerView(row);
}
