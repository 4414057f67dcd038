import { and, eq, isNull, sql } from "drizzle-orm";
import { notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import { decodeCountCursor, decodeRatingCursor, encodeCursor } from "./cursor";
import type { CatalogPage, CatalogQuery, PluginParams } from "./model";
import { textArray } from "./permissions";
import { pluginRows, versions } from "./tables";
import { detailView, isOffered, pluginColumns, summaryView } from "./views";

/** Each order's sort key; pages are keyset (the key and id of the last row), newest id breaking ties. */
const ORDERS = {
  installs: { column: pluginRows.installCount, decode: decodeCountCursor },
  rating: { column: pluginRows.ratingAvg, decode: decodeRatingCursor },
} as const;

/**
 * The marketplace: published, unsuspended plugins, matched by full-text search over name and
 * description (`websearch_to_tsquery`, the generated `search` column and its GIN index), filtered
 * by category, by most installs or best average rating.
 */
export async function searchCatalog({ ctx, input }: VerbArgs<PluginsContext, CatalogQuery>): Promise<CatalogPage> {
  const order = ORDERS[input.sort];
  const after = input.cursor ? order.decode(input.cursor, input.sort) : undefined;
  const rows = await ctx.db
    .select({ plugin: pluginColumns, current: versions })
    .from(pluginRows)
    .leftJoin(versions, eq(versions.id, pluginRows.currentVersionId))
    .where(
      and(
        eq(pluginRows.status, "published"),
        isNull(pluginRows.suspendedAt),
        input.q ? sql`${pluginRows.search} @@ websearch_to_tsquery('simple', ${input.q})` : undefined,
        input.category ? sql`${pluginRows.categories} @> ${textArray([input.category])}` : undefined,
        after
          ? sql`(${order.column} < ${after.value} or (${order.column} = ${after.value} and ${pluginRows.id} < ${after.id}))`
          : undefined,
      ),
    )
    .orderBy(sql`${order.column} desc nulls last`, sql`${pluginRows.id} desc nulls last`)
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1)?.plugin;
  const key = last ? String(input.sort === "installs" ? last.installCount : last.ratingAvg) : undefined;
  return {
    items: page.map((row) => summaryView(row.plugin, row.current)),
    next_cursor: rows.length > input.limit && last && key ? encodeCursor(input.sort, key, last.id) : null,
  };
}

/** A plugin's page in the marketplace: its published versions with their changelogs; 404 unless offered. */
export async function getCatalogPlugin({ ctx, input }: VerbArgs<PluginsContext, PluginParams>) {
  const [plugin] = await ctx.db.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, input.id));
  if (!plugin || !isOffered(plugin)) throw notFound("plugin");
  return detailView(ctx.db, plugin, "public");
}
