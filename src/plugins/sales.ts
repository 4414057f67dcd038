import { and, desc, eq, exists, inArray, isNotNull, lt, or, sql } from "drizzle-orm";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import { decodeTimeCursor, encodeCursor } from "./cursor";
import { requireDeveloper } from "./developers";
import type { PluginSales, SalesPage, SalesQuery } from "./model";
import { paymentRefunds, pluginRows, purchases, subscriptionRenewals } from "./tables";

const SALES_ORDER = "sales";

const total = (expression: ReturnType<typeof sql>) => sql<number>`coalesce(${expression}, 0)::bigint`.mapWith(Number);

type SalesTotals = PluginSales["totals"][number];

/**
 * The caller's sales: each of their plugins that sold at least once, newest plugin first (keyset:
 * the plugin's creation time and id), with its totals per currency: purchases, subscriptions'
 * renewals, gross and the platform's fees (both of purchases and renewals), refunds (of one-off
 * purchases, of subscriptions' first payments and of renewals), and the purchases still active.
 * Only the developer's own plugins: another developer's sales are never in it.
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
  const totals = await totalsOf(
    ctx,
    page.map((plugin) => plugin.id),
  );
  const last = page.at(-1);
  return {
    items: page.map(
      (plugin): PluginSales => ({
        plugin_id: plugin.id,
        slug: plugin.slug,
        name: plugin.name,
        totals: totals.get(plugin.id) ?? [],
      }),
    ),
    next_cursor:
      plugins.length > input.limit && last ? encodeCursor(SALES_ORDER, last.createdAt.toISOString(), last.id) : null,
  };
}

/**
 * Each plugin's totals per currency, of its purchases and of its subscriptions' renewals. A refund
 * is kept by payment in `payment_refunds` with Stripe's running total (a redelivered or older event
 * adds nothing); a one-off purchase keeps its own, a subscription invoice's is summed by invoice,
 * against its renewal or, for the first invoice, against its purchase. Read at query time, so the
 * order Stripe delivered the refund and the payment in does not matter.
 */
async function totalsOf(ctx: PluginsContext, pluginIds: string[]): Promise<Map<string, SalesTotals[]>> {
  const byPlugin = new Map<string, Map<string, SalesTotals>>();
  if (pluginIds.length === 0) return new Map();
  const entry = (pluginId: string, currency: string): SalesTotals => {
    const currencies = byPlugin.get(pluginId) ?? new Map<string, SalesTotals>();
    byPlugin.set(pluginId, currencies);
    const found = currencies.get(currency);
    if (found) return found;
    const fresh = {
      currency,
      purchases: 0,
      renewals: 0,
      gross: 0,
      platform_fees: 0,
      refunds: { count: 0, amount: 0 },
      active: 0,
    };
    currencies.set(currency, fresh);
    return fresh;
  };
  // What was refunded of each subscription invoice (in all: an invoice may have been paid in parts).
  const refundsByInvoice = (name: string) =>
    ctx.db
      .select({
        invoiceId: paymentRefunds.invoiceId,
        amount: sql<number>`sum(${paymentRefunds.amountRefunded})`.as("refunded_amount"),
      })
      .from(paymentRefunds)
      .where(isNotNull(paymentRefunds.invoiceId))
      .groupBy(paymentRefunds.invoiceId)
      .as(name);
  const firstRefunds = refundsByInvoice("first_payment_refunds");
  // A purchase's refunds: its one-off payment's, or its subscription's first payment's.
  const refundedOf = sql`(${purchases.amountRefunded} + coalesce(${firstRefunds.amount}, 0))`;
  const bought = await ctx.db
    .select({
      pluginId: purchases.pluginId,
      currency: purchases.currency,
      count: total(sql`count(*)`),
      gross: total(sql`sum(${purchases.amount})`),
      platformFees: total(sql`sum(${purchases.platformFee})`),
      refundCount: total(sql`count(*) filter (where ${refundedOf} > 0)`),
      refunded: total(sql`sum(${refundedOf})`),
      active: total(sql`count(*) filter (where ${purchases.status} = 'active')`),
    })
    .from(purchases)
    .leftJoin(firstRefunds, eq(firstRefunds.invoiceId, purchases.firstInvoiceId))
    .where(inArray(purchases.pluginId, pluginIds))
    .groupBy(purchases.pluginId, purchases.currency);
  for (const row of bought) {
    Object.assign(entry(row.pluginId, row.currency), {
      purchases: row.count,
      gross: row.gross,
      platform_fees: row.platformFees,
      refunds: { count: row.refundCount, amount: row.refunded },
      active: row.active,
    });
  }
  const renewalRefunds = refundsByInvoice("renewal_refunds");
  const renewed = await ctx.db
    .select({
      pluginId: purchases.pluginId,
      currency: subscriptionRenewals.currency,
      count: total(sql`count(*)`),
      gross: total(sql`sum(${subscriptionRenewals.amount})`),
      platformFees: total(sql`sum(${subscriptionRenewals.platformFee})`),
      refundCount: total(sql`count(*) filter (where ${renewalRefunds.amount} > 0)`),
      refunded: total(sql`sum(${renewalRefunds.amount})`),
    })
    .from(subscriptionRenewals)
    .innerJoin(purchases, eq(purchases.id, subscriptionRenewals.purchaseId))
    .leftJoin(renewalRefunds, eq(renewalRefunds.invoiceId, subscriptionRenewals.invoiceId))
    .where(inArray(purchases.pluginId, pluginIds))
    .groupBy(purchases.pluginId, subscriptionRenewals.currency);
  for (const row of renewed) {
    const totals = entry(row.pluginId, row.currency);
    totals.renewals = row.count;
    totals.gross += row.gross;
    totals.platform_fees += row.platformFees;
    totals.refunds.count += row.refundCount;
    totals.refunds.amount += row.refunded;
  }
  return new Map(
    [...byPlugin].map(([pluginId, currencies]) => [
      pluginId,
      [...currencies.values()].sort((a, b) => a.currency.localeCompare(b.currency)),
    ]),
  );
}
