import { and, desc, eq, lt, or, type SQL, sql } from "drizzle-orm";
import type { AuthUser } from "../shared/auth/verifier";
import { conflict, forbidden, notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext, Tx } from "./context";
import { decodeTimeCursor, encodeCursor } from "./cursor";
import type { PluginParams, ReportInput, Review, ReviewInput, ReviewListQuery, ReviewParams } from "./model";
import { installs, pluginRows, reviewReports, reviews } from "./tables";
import { isOffered } from "./views";

const REVIEW_ORDER = "reviews";

type ReviewRow = typeof reviews.$inferSelect;

const reviewView = (row: ReviewRow, user: AuthUser): Review => ({
  id: row.id,
  rating: row.rating,
  text: row.body,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
  mine: row.userId === user.userId,
});

/** A plugin the marketplace shows (published, not suspended), or 404. */
async function offeredPlugin(ctx: PluginsContext, id: string) {
  const [plugin] = await ctx.db
    .select({
      id: pluginRows.id,
      status: pluginRows.status,
      suspendedAt: pluginRows.suspendedAt,
      ratingAvg: pluginRows.ratingAvg,
      ratingCount: pluginRows.ratingCount,
    })
    .from(pluginRows)
    .where(eq(pluginRows.id, id));
  if (!plugin || !isOffered(plugin)) throw notFound("plugin");
  return plugin;
}

/** Moves a plugin's rating sum and count by a review written, changed or removed, in its transaction. */
const adjustRating = (tx: Tx, pluginId: string, sumDelta: number, countDelta: number) =>
  tx
    .update(pluginRows)
    .set({
      ratingSum: sql`${pluginRows.ratingSum} + ${sumDelta}`,
      ratingCount: sql`${pluginRows.ratingCount} + ${countDelta}`,
    })
    .where(eq(pluginRows.id, pluginId));

/** Deletes the reviews `where` selects and takes their ratings out of their plugins' averages. */
export async function removeReview(tx: Tx, where: SQL | undefined): Promise<number> {
  const removed = await tx
    .delete(reviews)
    .where(where)
    .returning({ pluginId: reviews.pluginId, rating: reviews.rating });
  for (const row of removed) await adjustRating(tx, row.pluginId, -row.rating, -1);
  return removed.length;
}

/** A plugin's reviews, newest first, with its average rating. */
export async function listReviews({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams & ReviewListQuery>) {
  const plugin = await offeredPlugin(ctx, input.id);
  const after = input.cursor ? decodeTimeCursor(input.cursor, REVIEW_ORDER) : undefined;
  const rows = await ctx.db
    .select()
    .from(reviews)
    .where(
      and(
        eq(reviews.pluginId, plugin.id),
        after
          ? or(lt(reviews.createdAt, after.at), and(eq(reviews.createdAt, after.at), lt(reviews.id, after.id)))
          : undefined,
      ),
    )
    .orderBy(desc(reviews.createdAt), desc(reviews.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return {
    items: page.map((row) => reviewView(row, user)),
    rating: { average: plugin.ratingAvg, count: plugin.ratingCount },
    next_cursor:
      rows.length > input.limit && last ? encodeCursor(REVIEW_ORDER, last.createdAt.toISOString(), last.id) : null,
  };
}

/**
 * A rating and review by a user who has the plugin installed (403 `install_required` otherwise),
 * one per user (409 `already_reviewed`: edit it instead). The average moves in the same transaction.
 */
export async function createReview({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams & ReviewInput>) {
  const plugin = await offeredPlugin(ctx, input.id);
  const row = await ctx.db.transaction(async (tx) => {
    const [installed] = await tx
      .select({ id: installs.id })
      .from(installs)
      .where(and(eq(installs.userId, user.userId), eq(installs.pluginId, plugin.id)));
    if (!installed) throw forbidden("install_required", "only users who installed the plugin may review it");
    const [created] = await tx
      .insert(reviews)
      .values({
        id: crypto.randomUUID(),
        pluginId: plugin.id,
        userId: user.userId,
        rating: input.rating,
        body: input.text,
      })
      .onConflictDoNothing()
      .returning();
    if (!created) throw conflict("already_reviewed", "you have reviewed this plugin; edit your review instead");
    await adjustRating(tx, plugin.id, input.rating, 1);
    return created;
  });
  return reviewView(row, user);
}

/** The caller's review, edited; its rating's change moves the average. */
export async function updateReview({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams & ReviewInput>) {
  const plugin = await offeredPlugin(ctx, input.id);
  const row = await ctx.db.transaction(async (tx) => {
    const [before] = await tx
      .select({ rating: reviews.rating })
      .from(reviews)
      .where(and(eq(reviews.pluginId, plugin.id), eq(reviews.userId, user.userId)))
      .for("update");
    if (!before) throw notFound("review");
    const [updated] = await tx
      .update(reviews)
      .set({ rating: input.rating, body: input.text, updatedAt: sql`now()` })
      .where(and(eq(reviews.pluginId, plugin.id), eq(reviews.userId, user.userId)))
      .returning();
    if (input.rating !== before.rating) await adjustRating(tx, plugin.id, input.rating - before.rating, 0);
    return updated as ReviewRow;
  });
  return reviewView(row, user);
}

/** The caller's review, removed (also while the plugin is suspended). */
export async function deleteReview({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams>) {
  const removed = await ctx.db.transaction((tx) =>
    removeReview(tx, and(eq(reviews.pluginId, input.id), eq(reviews.userId, user.userId))),
  );
  if (!removed) throw notFound("review");
}

/** Another user's review, reported for an admin to look at: once per reporter (409 `already_reported`). */
export async function reportReview({ ctx, user, input }: VerbArgs<PluginsContext, ReviewParams & ReportInput>) {
  const plugin = await offeredPlugin(ctx, input.id);
  await ctx.db.transaction(async (tx) => {
    const [review] = await tx
      .select({ id: reviews.id, userId: reviews.userId })
      .from(reviews)
      .where(and(eq(reviews.id, input.review_id), eq(reviews.pluginId, plugin.id)));
    if (!review) throw notFound("review");
    if (review.userId === user.userId) throw forbidden("own_review", "you cannot report your own review");
    const [reported] = await tx
      .insert(reviewReports)
      .values({ reviewId: review.id, userId: user.userId, reason: input.reason, note: input.note ?? null })
      .onConflictDoNothing()
      .returning({ reviewId: reviewReports.reviewId });
    if (!reported) throw conflict("already_reported", "you have already reported this review");
    await tx
      .update(reviews)
      .set({ reportCount: sql`${reviews.reportCount} + 1` })
      .where(eq(reviews.id, review.id));
  });
  ctx.logger.info({ review_id: input.review_id, reason: input.reason }, "review reported");
}
