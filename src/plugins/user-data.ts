import { and, asc, eq, inArray, isNotNull, ne, or, sql } from "drizzle-orm";
import type { PluginsChanged } from "../shared/plugin-tools";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import { announce } from "./announce";
import type { PluginsContext, Tx } from "./context";
import { lockUser, recordErased, recordPluginsErased } from "./erased-users";
import { paymentsDeps } from "./payment-account";
import { cancelPluginSubscription, deleteBuyerCustomer, deletePublisherAccount } from "./payments";
import { removeReview } from "./reviews";
import {
  checkoutGrants,
  developers,
  installs,
  paymentRefunds,
  pluginRows,
  purchases,
  reviewReports,
  reviews,
  subscriptionRenewals,
  versions,
} from "./tables";

/**
 * Ends at once, in Stripe, every plugin subscription the user pays and every one paying for a
 * plugin they published (it is erased with them): nobody goes on paying for a deleted account.
 * Stripe unreachable: throws, and the deletion event comes back later; a subscription Stripe no
 * longer has counts as ended, so a redelivery after a partial run finishes it.
 */
async function cancelSubscriptions(ctx: PluginsContext, tx: Tx, userId: string): Promise<void> {
  const running = await tx
    .select({ subscriptionId: purchases.subscriptionId })
    .from(purchases)
    .innerJoin(pluginRows, eq(pluginRows.id, purchases.pluginId))
    .where(
      and(
        isNotNull(purchases.subscriptionId),
        or(eq(purchases.status, "active"), and(eq(purchases.status, "ended"), eq(purchases.endReason, "lapsed"))),
        or(eq(purchases.userId, userId), eq(pluginRows.developerId, userId)),
      ),
    );
  if (running.length === 0) return;
  if (!ctx.payments.stripe) {
    ctx.logger.error(
      { user_id: userId, subscriptions: running.length },
      "STRIPE_SECRET_KEY unset: plugin subscriptions of a deleted account are not cancelled",
    );
    return;
  }
  for (const { subscriptionId } of running) {
    if (subscriptionId) await cancelPluginSubscription(paymentsDeps(ctx), subscriptionId, "now");
  }
}

/**
 * Deletes in Stripe every customer Checkout made for the user's purchases (a subscription always
 * has one; a one-off payment only if Stripe made one rather than a guest), as billing deletes its
 * own: nothing the buyer gave Stripe (name, address, cards) stays once the stored ids are cleared.
 * Checkout is passed no customer, so it makes one per purchase and a user may have several. A
 * developer's erasure also deletes those of the purchases of their plugins: the cascade takes those
 * purchases, and with them the only record of those customers that the buyers' own erasure would
 * find. A customer Stripe no longer has counts as deleted; Stripe unreachable throws and the event
 * comes back with the ids still stored.
 */
async function deleteCustomers(ctx: PluginsContext, tx: Tx, userId: string): Promise<void> {
  const rows = await tx
    .selectDistinct({ customerId: purchases.customerId })
    .from(purchases)
    .innerJoin(pluginRows, eq(pluginRows.id, purchases.pluginId))
    .where(and(isNotNull(purchases.customerId), or(eq(purchases.userId, userId), eq(pluginRows.developerId, userId))));
  if (rows.length === 0) return;
  if (!ctx.payments.stripe) {
    ctx.logger.error(
      { user_id: userId, customers: rows.length },
      "STRIPE_SECRET_KEY unset: the Stripe customers of a deleted account's plugin purchases stay",
    );
    return;
  }
  for (const { customerId } of rows) {
    if (customerId) await deleteBuyerCustomer(paymentsDeps(ctx), customerId);
  }
}

/**
 * Deletes the developer's Stripe Express account: nothing of the publisher stays with the platform's
 * Stripe. Called after the subscriptions to their plugins are cancelled, so nothing pays into it any
 * more. An account Stripe no longer has counts as deleted; Stripe unreachable, or refusing (it keeps an
 * account that still holds a balance until that is paid out), throws and the event comes back.
 */
async function deletePaymentAccount(ctx: PluginsContext, userId: string, accountId: string): Promise<void> {
  if (!ctx.payments.stripe) {
    ctx.logger.error(
      { user_id: userId, account: accountId },
      "STRIPE_SECRET_KEY unset: the Stripe account of a deleted developer is not deleted",
    );
    return;
  }
  await deletePublisherAccount(paymentsDeps(ctx), accountId);
  ctx.logger.info({ user_id: userId, account: accountId }, "publisher payment account deleted");
}

/**
 * Erases everything the plugins service holds of a user, in one transaction: their reviews (their
 * ratings leave the averages) and reports (the counts drop), their installs (the install counts
 * drop), the grants of checkouts they started, and their developer account with every plugin they
 * published: its versions, its sales, and the installs and reviews other users had of it, and its
 * Stripe Express account. Those users' chat instances are told once it is committed. Their
 * purchases stay in the publishers' figures without them (no user, no Stripe customer); the
 * subscriptions among them, and those to their own plugins, are cancelled in Stripe first, and the
 * Stripe customers their checkouts (and, for a developer, the checkouts of their plugins) made are
 * deleted there. The SHA-256 of the user's id is kept in
 * `erased_users`, and the ids of the plugins they published in `erased_plugins`, so a payment
 * Stripe completes later for them, or for one of those plugins, is given back.
 *
 * The Stripe calls are made inside the transaction, under the user's exclusive lock (a payment's
 * completion takes its buyer's and its plugin's publisher's shared): a completion in flight commits
 * first and its subscription is among those cancelled, one arriving later waits and finds the user,
 * or the plugin, erased. A Stripe failure rolls everything back and throws, so the event comes
 * again. Idempotent: a second run finds nothing.
 */
export async function eraseUser(ctx: PluginsContext, userId: string): Promise<void> {
  const affected = await ctx.db.transaction(async (tx) => {
    await lockUser(tx, userId, "exclusive");
    await recordErased(tx, userId);
    // Locked: a payment account being made meanwhile is committed, and so deleted, before this reads it.
    const [developer] = await tx
      .select({ accountId: developers.stripeAccountId })
      .from(developers)
      .where(eq(developers.userId, userId))
      .for("update");
    // After that lock: a plugin being published meanwhile is committed, and so recorded, first.
    if (developer) await recordPluginsErased(tx, userId);
    await cancelSubscriptions(ctx, tx, userId);
    await deleteCustomers(ctx, tx, userId);
    if (developer?.accountId) await deletePaymentAccount(ctx, userId, developer.accountId);
    // Plugin rows before purchase and install rows, in id order, as installs, approvals and the
    // payment webhook take them.
    const touched = await tx
      .selectDistinct({ pluginId: installs.pluginId })
      .from(installs)
      .where(eq(installs.userId, userId))
      .union(tx.selectDistinct({ pluginId: purchases.pluginId }).from(purchases).where(eq(purchases.userId, userId)));
    if (touched.length > 0) {
      await tx
        .select({ id: pluginRows.id })
        .from(pluginRows)
        .where(
          inArray(
            pluginRows.id,
            touched.map((row) => row.pluginId),
          ),
        )
        .orderBy(asc(pluginRows.id))
        .for("key share");
    }
    const subscribed = sql`${purchases.subscriptionId} is not null and ${purchases.status} <> 'refunded'`;
    await tx
      .update(purchases)
      .set({
        userId: null,
        customerId: null,
        status: sql`case when ${subscribed} then 'ended' else ${purchases.status} end`,
        endReason: sql`case when ${subscribed} then 'canceled' else ${purchases.endReason} end`,
        updatedAt: sql`now()`,
      })
      .where(eq(purchases.userId, userId));
    await tx.delete(checkoutGrants).where(eq(checkoutGrants.userId, userId));
    await removeReview(tx, eq(reviews.userId, userId));
    const reports = await tx
      .delete(reviewReports)
      .where(eq(reviewReports.userId, userId))
      .returning({ reviewId: reviewReports.reviewId });
    for (const { reviewId } of reports) {
      await tx
        .update(reviews)
        .set({ reportCount: sql`${reviews.reportCount} - 1` })
        .where(eq(reviews.id, reviewId));
    }
    const removed = await tx
      .delete(installs)
      .where(eq(installs.userId, userId))
      .returning({ pluginId: installs.pluginId });
    for (const { pluginId } of removed) {
      await tx
        .update(pluginRows)
        .set({ installCount: sql`${pluginRows.installCount} - 1` })
        .where(eq(pluginRows.id, pluginId));
    }
    // Other users who had one of the developer's plugins: it disappears from under them.
    const others = await tx
      .select({ userId: installs.userId, pluginId: installs.pluginId })
      .from(installs)
      .innerJoin(pluginRows, eq(pluginRows.id, installs.pluginId))
      .where(and(eq(pluginRows.developerId, userId), ne(installs.userId, userId)));
    // The cascade takes the plugins, their versions, installs, reviews and reports.
    await tx.delete(developers).where(eq(developers.userId, userId));
    return others;
  });
  await announce(
    ctx,
    affected.map((row): PluginsChanged => ({ userId: row.userId, pluginId: row.pluginId, reason: "removed" })),
  );
}

/**
 * The user's part of a data export: their developer account (with its Stripe account's state) and
 * every plugin and version they published (manifests and signatures as sent), their installs with
 * what they granted, their purchases with their subscriptions' renewals, and the reviews and
 * reports they wrote.
 */
export async function exportUser(ctx: PluginsContext, userId: string) {
  const [developer] = await ctx.db.select().from(developers).where(eq(developers.userId, userId));
  const own = await ctx.db
    .select({
      id: pluginRows.id,
      slug: pluginRows.slug,
      name: pluginRows.name,
      status: pluginRows.status,
      suspendedAt: pluginRows.suspendedAt,
      homepageUrl: pluginRows.homepageUrl,
      supportUrl: pluginRows.supportUrl,
      createdAt: pluginRows.createdAt,
    })
    .from(pluginRows)
    .where(eq(pluginRows.developerId, userId))
    .orderBy(asc(pluginRows.createdAt));
  const ownVersions =
    own.length > 0
      ? await ctx.db
          .select()
          .from(versions)
          .where(
            inArray(
              versions.pluginId,
              own.map((plugin) => plugin.id),
            ),
          )
          .orderBy(asc(versions.createdAt))
      : [];
  const installed = await ctx.db
    .select({ install: installs, slug: pluginRows.slug, version: versions.version })
    .from(installs)
    .innerJoin(pluginRows, eq(pluginRows.id, installs.pluginId))
    .innerJoin(versions, eq(versions.id, installs.versionId))
    .where(eq(installs.userId, userId))
    .orderBy(asc(installs.installedAt));
  const written = await ctx.db
    .select({ review: reviews, slug: pluginRows.slug })
    .from(reviews)
    .innerJoin(pluginRows, eq(pluginRows.id, reviews.pluginId))
    .where(eq(reviews.userId, userId))
    .orderBy(asc(reviews.createdAt));
  const reports = await ctx.db
    .select()
    .from(reviewReports)
    .where(eq(reviewReports.userId, userId))
    .orderBy(asc(reviewReports.createdAt));
  const bought = await ctx.db
    .select({ purchase: purchases, slug: pluginRows.slug })
    .from(purchases)
    .innerJoin(pluginRows, eq(pluginRows.id, purchases.pluginId))
    .where(eq(purchases.userId, userId))
    .orderBy(asc(purchases.createdAt));
  const renewals =
    bought.length > 0
      ? await ctx.db
          .select({
            renewal: subscriptionRenewals,
            refunded: sql<number>`coalesce(sum(${paymentRefunds.amountRefunded}), 0)::int`.mapWith(Number),
          })
          .from(subscriptionRenewals)
          .leftJoin(paymentRefunds, eq(paymentRefunds.invoiceId, subscriptionRenewals.invoiceId))
          .where(
            inArray(
              subscriptionRenewals.purchaseId,
              bought.map((row) => row.purchase.id),
            ),
          )
          .groupBy(subscriptionRenewals.invoiceId)
          .orderBy(asc(subscriptionRenewals.paidAt))
      : [];
  // What was refunded of each subscription's first payment (matched through its first invoice).
  const firstInvoices = bought.flatMap((row) => (row.purchase.firstInvoiceId ? [row.purchase.firstInvoiceId] : []));
  const firstRefunds = new Map(
    (firstInvoices.length > 0
      ? await ctx.db
          .select({
            invoiceId: paymentRefunds.invoiceId,
            refunded: sql<number>`sum(${paymentRefunds.amountRefunded})::int`.mapWith(Number),
          })
          .from(paymentRefunds)
          .where(inArray(paymentRefunds.invoiceId, firstInvoices))
          .groupBy(paymentRefunds.invoiceId)
      : []
    ).map((row) => [row.invoiceId, row.refunded]),
  );
  return {
    developer: developer
      ? {
          display_name: developer.displayName,
          public_key: developer.publicKey,
          created_at: developer.createdAt.toISOString(),
          updated_at: developer.updatedAt.toISOString(),
          payment_account: developer.stripeAccountId
            ? {
                account_id: developer.stripeAccountId,
                charges_enabled: developer.chargesEnabled,
                payouts_enabled: developer.payoutsEnabled,
                details_submitted: developer.detailsSubmitted,
              }
            : null,
        }
      : null,
    plugins: own.map((plugin) => ({
      id: plugin.id,
      slug: plugin.slug,
      name: plugin.name,
      status: plugin.status,
      suspended: plugin.suspendedAt !== null,
      homepage_url: plugin.homepageUrl,
      support_url: plugin.supportUrl,
      created_at: plugin.createdAt.toISOString(),
      versions: ownVersions
        .filter((row) => row.pluginId === plugin.id)
        .map((row) => ({
          version: row.version,
          status: row.status,
          manifest: row.manifest,
          signature: row.signature,
          signing_key: row.signingKey,
          review_note: row.reviewNote,
          created_at: row.createdAt.toISOString(),
          submitted_at: row.submittedAt?.toISOString() ?? null,
          reviewed_at: row.reviewedAt?.toISOString() ?? null,
        })),
    })),
    installs: installed.map(({ install, slug, version }) => ({
      plugin_id: install.pluginId,
      slug,
      version,
      grants: {
        device_tools: install.grantedDeviceTools,
        origins: install.grantedOrigins,
        data: install.grantedData,
      },
      installed_at: install.installedAt.toISOString(),
      updated_at: install.updatedAt.toISOString(),
    })),
    reviews: written.map(({ review, slug }) => ({
      id: review.id,
      plugin_id: review.pluginId,
      slug,
      rating: review.rating,
      text: review.body,
      created_at: review.createdAt.toISOString(),
      updated_at: review.updatedAt.toISOString(),
    })),
    purchases: bought.map(({ purchase, slug }) => ({
      plugin_id: purchase.pluginId,
      slug,
      version: purchase.version,
      model: purchase.model,
      amount: purchase.amount,
      currency: purchase.currency,
      // A one-off payment's, or a subscription's first payment's.
      amount_refunded: purchase.amountRefunded + (firstRefunds.get(purchase.firstInvoiceId) ?? 0),
      status: purchase.status,
      end_reason: purchase.endReason,
      created_at: purchase.createdAt.toISOString(),
      // A subscription's months after the first, each with its invoice.
      renewals: renewals
        .filter((row) => row.renewal.purchaseId === purchase.id)
        .map(({ renewal, refunded }) => ({
          invoice_id: renewal.invoiceId,
          amount: renewal.amount,
          currency: renewal.currency,
          amount_refunded: refunded,
          paid_at: renewal.paidAt.toISOString(),
        })),
    })),
    reports: reports.map((report) => ({
      review_id: report.reviewId,
      reason: report.reason,
      note: report.note,
      created_at: report.createdAt.toISOString(),
    })),
  };
}

/** The plugins service's consumers of account deletions and export requests (group "plugins"). */
export function startPluginsUserData(ctx: PluginsContext): Promise<UserDataConsumers> {
  return startUserDataConsumers(ctx.platform, ctx.logger, {
    service: "plugins",
    erase: (userId) => eraseUser(ctx, userId),
    export: (userId) => exportUser(ctx, userId),
  });
}
