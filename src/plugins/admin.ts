import { and, asc, desc, eq, gt, inArray, isNotNull, ne, or, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import { conflict, notFound } from "../shared/errors";
import type { PluginsChanged } from "../shared/plugin-tools";
import type { VerbArgs } from "../shared/verb";
import { requireAdmin } from "./admins";
import { announce } from "./announce";
import type { PluginsContext, Tx } from "./context";
import { decodeTimeCursor, encodeCursor } from "./cursor";
import type { AdminReviewParams, PluginParams, QueueQuery, ReasonInput, VersionParams } from "./model";
import { isEmpty, newlyAsked, textArray } from "./permissions";
import { refreshStatus } from "./publish";
import { removeReview } from "./reviews";
import { compareVersions } from "./semver";
import { developers, installs, pluginRows, reviewReports, reviews, versions } from "./tables";
import { detailView, listingOf, type PluginRecord, pluginColumns, type VersionRow, versionView } from "./views";

const QUEUE_ORDER = "queue";

/** Versions waiting for review, oldest submission first, with their plugin and developer. */
export async function reviewQueue({ ctx, user, input }: VerbArgs<PluginsContext, QueueQuery>) {
  requireAdmin(ctx, user);
  const after = input.cursor ? decodeTimeCursor(input.cursor, QUEUE_ORDER) : undefined;
  const rows = await ctx.db
    .select({
      version: versions,
      slug: pluginRows.slug,
      name: pluginRows.name,
      developerId: developers.userId,
      developerName: developers.displayName,
    })
    .from(versions)
    .innerJoin(pluginRows, eq(pluginRows.id, versions.pluginId))
    .innerJoin(developers, eq(developers.userId, pluginRows.developerId))
    .where(
      and(
        eq(versions.status, "in_review"),
        after
          ? or(gt(versions.submittedAt, after.at), and(eq(versions.submittedAt, after.at), gt(versions.id, after.id)))
          : undefined,
      ),
    )
    .orderBy(asc(versions.submittedAt), asc(versions.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return {
    items: page.map((row) => ({
      plugin_id: row.version.pluginId,
      slug: row.slug,
      name: row.name,
      developer: { user_id: row.developerId, display_name: row.developerName },
      version: versionView(row.version, { withReview: true }),
    })),
    next_cursor:
      rows.length > input.limit && last?.version.submittedAt
        ? encodeCursor(QUEUE_ORDER, last.version.submittedAt.toISOString(), last.version.id)
        : null,
  };
}

async function lockPlugin(tx: Tx, id: string): Promise<PluginRecord> {
  const [plugin] = await tx.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, id)).for("update");
  if (!plugin) throw notFound("plugin");
  return plugin;
}

async function versionInReview(tx: Tx, input: VersionParams): Promise<VersionRow> {
  const [row] = await tx
    .select()
    .from(versions)
    .where(and(eq(versions.pluginId, input.id), eq(versions.version, input.version)))
    .for("update");
  if (!row) throw notFound("version");
  if (row.status !== "in_review") {
    throw conflict("invalid_state", `version ${input.version} is ${row.status}, not in review`);
  }
  return row;
}

/**
 * Installs on older versions follow the newly live one when it asks for nothing their version did
 * not (its grants narrowed to what it still asks for), the user's tier is still among its tiers,
 * and it is free or the install is paid for. The others stay until the user accepts
 * (`POST /installs/:plugin_id/upgrade`). Runs under the plugin row's lock, which installs take
 * shared: no install can land on an old version after this has run.
 */
async function moveInstalls(tx: Tx, target: VersionRow): Promise<string[]> {
  const onVersions = await tx
    .selectDistinct({ versionId: installs.versionId })
    .from(installs)
    .where(and(eq(installs.pluginId, target.pluginId), ne(installs.versionId, target.id)));
  if (onVersions.length === 0) return [];
  const from = await tx
    .select()
    .from(versions)
    .where(
      inArray(
        versions.id,
        onVersions.map((row) => row.versionId),
      ),
    );
  const asked = target.manifest.permissions;
  const narrowed = (column: AnyPgColumn, values: readonly string[]) =>
    sql`array(select granted from unnest(${column}) as granted where granted = any(${textArray(values)}))`;
  const moved: string[] = [];
  for (const old of from) {
    if (compareVersions(target.version, old.version) <= 0) continue;
    if (!isEmpty(newlyAsked(old.manifest.permissions, asked))) continue;
    const rows = await tx
      .update(installs)
      .set({
        versionId: target.id,
        grantedDeviceTools: narrowed(installs.grantedDeviceTools, asked.deviceTools),
        grantedOrigins: narrowed(installs.grantedOrigins, asked.origins),
        grantedData: narrowed(installs.grantedData, asked.data),
        updatedAt: sql`now()`,
      })
      .where(
        and(
          eq(installs.pluginId, target.pluginId),
          eq(installs.versionId, old.id),
          sql`${installs.tier} = any(${textArray(target.manifest.tiers)})`,
          target.manifest.pricing.model === "free" ? undefined : isNotNull(installs.entitlementId),
        ),
      )
      .returning({ userId: installs.userId });
    moved.push(...rows.map((row) => row.userId));
  }
  return moved;
}

/**
 * An admin publishes a version in review. The newest published version becomes the live one: the
 * listing takes its name, description, icon and categories, new installs get it, and installs
 * that need no new consent move to it at once (`moveInstalls`).
 */
export async function approveVersion({ ctx, user, input }: VerbArgs<PluginsContext, VersionParams>) {
  requireAdmin(ctx, user);
  const { plugin, moved } = await ctx.db.transaction(async (tx) => {
    const locked = await lockPlugin(tx, input.id);
    const row = await versionInReview(tx, input);
    await tx
      .update(versions)
      .set({ status: "published", reviewedBy: user.userId, reviewedAt: sql`now()`, reviewNote: null })
      .where(eq(versions.id, row.id));
    const [current] = locked.currentVersionId
      ? await tx.select({ version: versions.version }).from(versions).where(eq(versions.id, locked.currentVersionId))
      : [];
    const becomesLive = !current || compareVersions(row.version, current.version) > 0;
    if (becomesLive) {
      await tx
        .update(pluginRows)
        .set({ currentVersionId: row.id, ...listingOf(row.manifest) })
        .where(eq(pluginRows.id, locked.id));
    }
    await refreshStatus(tx, locked.id);
    const users = becomesLive ? await moveInstalls(tx, row) : [];
    const [updated] = await tx.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, locked.id));
    return { plugin: updated as PluginRecord, moved: users };
  });
  ctx.versionEvents.inc({ event: "published" });
  if (moved.length > 0) ctx.installChanges.inc({ action: "auto_upgraded" }, moved.length);
  ctx.logger.info(
    { plugin_id: plugin.id, version: input.version, admin: user.userId, upgraded: moved.length },
    "plugin version published",
  );
  await announce(
    ctx,
    moved.map((userId): PluginsChanged => ({ userId, pluginId: plugin.id, reason: "upgraded" })),
  );
  return detailView(ctx.db, plugin, "owner");
}

/** An admin turns a version down, saying why; the developer publishes a new version instead. */
export async function rejectVersion({ ctx, user, input }: VerbArgs<PluginsContext, VersionParams & ReasonInput>) {
  requireAdmin(ctx, user);
  const plugin = await ctx.db.transaction(async (tx) => {
    await lockPlugin(tx, input.id);
    const row = await versionInReview(tx, input);
    await tx
      .update(versions)
      .set({ status: "rejected", reviewedBy: user.userId, reviewedAt: sql`now()`, reviewNote: input.reason })
      .where(eq(versions.id, row.id));
    await refreshStatus(tx, input.id);
    const [updated] = await tx.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, input.id));
    return updated as PluginRecord;
  });
  ctx.versionEvents.inc({ event: "rejected" });
  ctx.logger.info({ plugin_id: plugin.id, version: input.version, admin: user.userId }, "plugin version rejected");
  return detailView(ctx.db, plugin, "owner");
}

/** Every user who has the plugin installed. */
const installers = async (ctx: PluginsContext, pluginId: string) =>
  (await ctx.db.select({ userId: installs.userId }).from(installs).where(eq(installs.pluginId, pluginId))).map(
    (row) => row.userId,
  );

/**
 * Suspension takes a plugin off the marketplace and away from the agent at once (every installer's
 * chat is told), keeping its installs, versions and reviews, so lifting it restores everything.
 */
export async function suspendPlugin({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams & ReasonInput>) {
  requireAdmin(ctx, user);
  const [plugin] = await ctx.db
    .update(pluginRows)
    .set({ suspendedAt: sql`now()`, suspendedReason: input.reason, updatedAt: sql`now()` })
    .where(and(eq(pluginRows.id, input.id), sql`${pluginRows.suspendedAt} is null`))
    .returning(pluginColumns);
  if (!plugin) {
    const [exists] = await ctx.db.select({ id: pluginRows.id }).from(pluginRows).where(eq(pluginRows.id, input.id));
    if (!exists) throw notFound("plugin");
    throw conflict("already_suspended", "the plugin is already suspended");
  }
  ctx.logger.warn({ plugin_id: plugin.id, admin: user.userId }, "plugin suspended");
  const users = await installers(ctx, plugin.id);
  await announce(
    ctx,
    users.map((userId): PluginsChanged => ({ userId, pluginId: plugin.id, reason: "suspended" })),
  );
  return detailView(ctx.db, plugin, "owner");
}

export async function unsuspendPlugin({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams>) {
  requireAdmin(ctx, user);
  const [plugin] = await ctx.db
    .update(pluginRows)
    .set({ suspendedAt: null, suspendedReason: null, updatedAt: sql`now()` })
    .where(and(eq(pluginRows.id, input.id), isNotNull(pluginRows.suspendedAt)))
    .returning(pluginColumns);
  if (!plugin) {
    const [exists] = await ctx.db.select({ id: pluginRows.id }).from(pluginRows).where(eq(pluginRows.id, input.id));
    if (!exists) throw notFound("plugin");
    throw conflict("not_suspended", "the plugin is not suspended");
  }
  ctx.logger.info({ plugin_id: plugin.id, admin: user.userId }, "plugin suspension lifted");
  const users = await installers(ctx, plugin.id);
  await announce(
    ctx,
    users.map((userId): PluginsChanged => ({ userId, pluginId: plugin.id, reason: "unsuspended" })),
  );
  return detailView(ctx.db, plugin, "owner");
}

/** Reviews other users reported, most reported first, with the reasons given. */
export async function reportedReviews({ ctx, user }: VerbArgs<PluginsContext>) {
  requireAdmin(ctx, user);
  const rows = await ctx.db
    .select({
      id: reviews.id,
      pluginId: reviews.pluginId,
      slug: pluginRows.slug,
      rating: reviews.rating,
      body: reviews.body,
      reportCount: reviews.reportCount,
      createdAt: reviews.createdAt,
      reasons: sql<
        string[]
      >`array(select distinct ${reviewReports.reason} from ${reviewReports} where ${reviewReports.reviewId} = ${reviews.id} order by 1)`,
    })
    .from(reviews)
    .innerJoin(pluginRows, eq(pluginRows.id, reviews.pluginId))
    .where(gt(reviews.reportCount, 0))
    .orderBy(desc(reviews.reportCount), asc(reviews.id))
    .limit(100);
  return {
    items: rows.map((row) => ({
      id: row.id,
      plugin_id: row.pluginId,
      slug: row.slug,
      rating: row.rating,
      text: row.body,
      report_count: row.reportCount,
      reasons: row.reasons,
      created_at: row.createdAt.toISOString(),
    })),
  };
}

/** An admin removes a review (its rating leaves the average). */
export async function deleteReviewAsAdmin({ ctx, user, input }: VerbArgs<PluginsContext, AdminReviewParams>) {
  requireAdmin(ctx, user);
  const removed = await ctx.db.transaction((tx) => removeReview(tx, eq(reviews.id, input.review_id)));
  if (!removed) throw notFound("review");
  ctx.logger.info({ review_id: input.review_id, admin: user.userId }, "review removed by an admin");
}
