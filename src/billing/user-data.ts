import { asc, eq } from "drizzle-orm";
import Stripe from "stripe";
import { isMissing, stripeRemoval, toServiceError } from "../shared/stripe-call";
import { startUserDataConsumers, type UserDataConsumers } from "../shared/user-data";
import type { BillingContext } from "./context";
import { lockCustomer } from "./sync";
import { customers, outbox, subscriptions } from "./tables";

/** Subscription statuses Stripe has already ended: nothing left to cancel. */
const ENDED = new Set(["canceled", "incomplete_expired"]);
/** Invoices listed into an export at most; a person has a few dozen. */
const MAX_INVOICES = 1000;

/**
 * Erases everything billing holds of a user: in Stripe, each subscription still running is
 * cancelled at once and the customer deleted; then our rows (customer, subscriptions, tier
 * changes not yet relayed). Stripe unreachable: throws, and the event comes back later. Objects
 * already gone in Stripe count as done, so a redelivery after a partial erasure finishes it. The
 * customer row is locked throughout, so a webhook for this customer waits and then finds nothing.
 */
export async function eraseUser(ctx: BillingContext, userId: string): Promise<void> {
  const stripe = ctx.config.stripe;
  await ctx.db.transaction(async (tx) => {
    const [existing] = await tx.select().from(customers).where(eq(customers.userId, userId));
    const customer = existing ? await lockCustomer(tx, userId) : undefined;
    const rows = await tx.select().from(subscriptions).where(eq(subscriptions.userId, userId));
    const customerId = customer?.stripeCustomerId;
    if (stripe && (customerId || rows.length > 0)) {
      for (const row of rows) if (!ENDED.has(row.status)) await cancelNow(ctx, stripe, row.id);
      if (customerId) await deleteCustomer(ctx, stripe, customerId);
    } else if (customerId) {
      ctx.logger.error({ user_id: userId }, "STRIPE_SECRET_KEY unset: the Stripe customer of a deleted account stays");
    }
    await tx.delete(subscriptions).where(eq(subscriptions.userId, userId));
    await tx.delete(outbox).where(eq(outbox.userId, userId));
    await tx.delete(customers).where(eq(customers.userId, userId));
  });
}

async function cancelNow(ctx: BillingContext, stripe: Stripe, subscriptionId: string): Promise<void> {
  try {
    await stripe.subscriptions.cancel(subscriptionId, {}, { idempotencyKey: `erase:${subscriptionId}` });
  } catch (error) {
    if (isMissing(error)) return;
    // Stripe refuses to cancel what has already ended: fine, if a fresh read says so.
    if (error instanceof Stripe.errors.StripeInvalidRequestError) {
      const current = await stripe.subscriptions.retrieve(subscriptionId).catch((again) => {
        if (isMissing(again)) return undefined;
        throw toServiceError(ctx.logger, "subscriptions.retrieve", again);
      });
      if (!current || ENDED.has(current.status)) return;
    }
    throw toServiceError(ctx.logger, "subscriptions.cancel", error);
  }
}

async function deleteCustomer(ctx: BillingContext, stripe: Stripe, customerId: string): Promise<void> {
  await stripeRemoval(ctx.logger, "customers.del", () => stripe.customers.del(customerId));
}

/** The user's tier, subscriptions (our copy of Stripe's) and invoices (listed from Stripe). */
export async function exportUser(ctx: BillingContext, userId: string) {
  const [customer] = await ctx.db.select().from(customers).where(eq(customers.userId, userId));
  const rows = await ctx.db
    .select()
    .from(subscriptions)
    .where(eq(subscriptions.userId, userId))
    .orderBy(asc(subscriptions.stripeCreatedAt));
  return {
    tier: customer?.tier ?? "free",
    stripe_customer_id: customer?.stripeCustomerId ?? null,
    subscriptions: rows.map((row) => ({
      id: row.id,
      status: row.status,
      tier: row.tier,
      price_id: row.priceId,
      current_period_end: row.currentPeriodEnd?.toISOString() ?? null,
      cancel_at_period_end: row.cancelAtPeriodEnd,
      ended_at: row.endedAt?.toISOString() ?? null,
      created_at: row.stripeCreatedAt.toISOString(),
    })),
    invoices: customer?.stripeCustomerId ? await invoicesOf(ctx, customer.stripeCustomerId) : [],
  };
}

async function invoicesOf(ctx: BillingContext, customerId: string) {
  const stripe = ctx.config.stripe;
  if (!stripe) return [];
  try {
    const invoices = await stripe.invoices.list({ customer: customerId, limit: 100 }).autoPagingToArray({
      limit: MAX_INVOICES,
    });
    return invoices.map((invoice) => ({
      id: invoice.id,
      number: invoice.number ?? null,
      status: invoice.status,
      currency: invoice.currency,
      amount_due: invoice.amount_due,
      amount_paid: invoice.amount_paid,
      created_at: new Date(invoice.created * 1000).toISOString(),
      hosted_invoice_url: invoice.hosted_invoice_url ?? null,
    }));
  } catch (error) {
    if (isMissing(error)) return [];
    throw toServiceError(ctx.logger, "invoices.list", error);
  }
}

/** Billing's consumers of account deletions and export requests (group "billing"). */
export function startBillingUserData(ctx: BillingContext): Promise<UserDataConsumers> {
  return startUserDataConsumers(ctx.platform, ctx.logger, {
    service: "billing",
    erase: (userId) => eraseUser(ctx, userId),
    export: (userId) => exportUser(ctx, userId),
  });
}
