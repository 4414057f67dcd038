import { and, desc, eq, exists, inArray, lt, or, sql } from "drizzle-orm";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import { decodeTimeCursor, encodeCursor } from "./cursor";
import { requireDeveloper } from "./developers";
import type { PluginSales, SalesPage, SalesQuery } from "./model";
import { pluginRows, purchases } from "./tables";

const SALES_ORDER = "sales";

const total = (expression: ReturnType<typeof sql>) => sql<number>`coalesce(${expression}, 0)::bigint`.mapWith(Number);

/**
 * The caller's sales: each of their plugins that sold at least once, newest plugin first (keyset:
 * the plugin's creation time and id), with its totals per currency: purchases, gross, the platform's
 * fees, refunds, and the purchases still active. A subscription counts its first payment (renewals
 * are in the publisher's Stripe dashboard). Only the developer's own plugins: another developer's
 * sales are never in it.
 */
export async function listSales({ ctx, user, input }: VerbArgs<PluginsContext, SalesQuery>): Promise<SalesPage> {
  await requireDeveloper(ctx, user);
  const after = input.cursor ? decodeTimeCursor(input.cursor, SALES_ORDER) : undefined;
  const plugins = await ctx.db
    .select({ id: pluginRows.id, slug: pluginRows.slug, name: pluginRows.name, createdAt: pluginRows.createdAt })
    .from(pluginRows)
    .where(
      and(
        eq(pluginRows.developerId, user.userId),
        exists(ctx.db.select({ one: sql`1` }).from(purchases).where(eq(purchases.pluginId, pluginRows.id))),
        after
          ? or(lt(pluginRows.createdAt, after.at), and(eq(pluginRows.createdAt, after.at), lt(pluginRows.id, after.id)))
          : undefined,
      ),
    )
    .orderBy(desc(pluginRows.createdAt), desc(pluginRows.id))
    .limit(input.limit + 1);
  const page = plugins.slice(0, input.limit);
  const totals =
    page.length === 0
      ? []
      : await ctx.db
          .select({
            pluginId: purchases.pluginId,
            currency: purchases.currency,
            count: total(sql`count(*)`),
            gross: total(sql`sum(${purchases.amount})`),
            platformFees: total(sql`sum(${purchases.platformFee})`),
            refundCount: total(sql`count(*) filter (where ${purchases.amountRefunded} > 0)`),
            refunded: total(sql`sum(${purchases.amountRefunded})`),
            active: total(sql`count(*) filter (where ${purchases.status} = 'active')`),
          })
          .from(purchases)
          .where(
            inArray(
              purchases.pluginId,
              page.map((plugin) => plugin.id),
            ),
          )
          .groupBy(purchases.pluginId, purchases.currency)
          .orderBy(purchases.currency);
  const last = page.at(-1);
  return {
    items: page.map(
      (plugin): PluginSales => ({
        plugin_id: plugin.id,
        slug: plugin.slug,
        name: plugin.name,
        totals: totals
          .filter((row) => row.pluginId === plugin.id)
          .map((row) => ({
            currency: row.currency,
            purchases: row.count,
            gross: row.gross,
            platform_fees: row.platformFees,
            refunds: { count: row.refundCount, amount: row.refunded },
            active: row.active,
          })),
      }),
    ),
    next_cursor:
      plugins.length > input.limit && last ? encodeCursor(SALES_ORDER, last.createdAt.toISOString(), last.id) : null,
  };
}
