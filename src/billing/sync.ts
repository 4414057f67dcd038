import { eq } from "drizzle-orm";
import type Stripe from "stripe";
import type { TierChangedEvent } from "../shared/events/tier-changed";
import { type Tier, tierRank } from "../shared/tiers";
import { tierForPrice } from "./config";
import type { BillingContext, Tx } from "./context";
import { customers, outbox, subscriptions } from "./tables";

export type CustomerRow = typeof customers.$inferSelect;
export type SubscriptionRow = typeof subscriptions.$inferSelect;

/**
 * Statuses that keep the paid tier. `past_due` keeps it while Stripe retries the payment; when
 * the retries run out Stripe moves the subscription to canceled or unpaid, and the tier falls.
 */
const ENTITLED = new Set(["active", "trialing", "past_due"]);

export const isEntitled = (row: Pick<SubscriptionRow, "status" | "tier">): boolean =>
  ENTITLED.has(row.status) && row.tier !== null;

/** Locks the user's customer row until the transaction ends, creating it if needed. */
export async function lockCustomer(tx: Tx, userId: string): Promise<CustomerRow> {
  await tx.insert(customers).values({ userId }).onConflictDoNothing();
  const [row] = await tx.select().from(customers).where(eq(customers.userId, userId)).for("update");
  if (!row) throw new Error("customer row vanished inside its transaction");
  return row;
}

/** Locks the customer row that owns a Stripe customer, or returns undefined for a customer not ours. */
export async function lockCustomerByStripeId(tx: Tx, stripeCustomerId: string): Promise<CustomerRow | undefined> {
  const [row] = await tx.select().from(customers).where(eq(customers.stripeCustomerId, stripeCustomerId)).for("update");
  return row;
}

/**
 * Stores a subscription exactly as Stripe just returned it, then recomputes the user's tier and,
 * if it changed, writes the change to the outbox in the same transaction. The caller holds the
 * customer row lock and read `subscription` from Stripe after taking it, so the last writer always
 * wrote the newest state whatever order the webhooks arrived in.
 */
export async function storeSubscription(
  ctx: BillingContext,
  tx: Tx,
  customer: CustomerRow,
  subscription: Stripe.Subscription,
  reason: string,
): Promise<{ tier: Tier; changed: boolean }> {
  const item = subscription.items.data[0];
  const values = {
    id: subscription.id,
    userId: customer.userId,
    stripeCustomerId: idOf(subscription.customer),
    status: subscription.status,
    itemId: item?.id ?? null,
    priceId: item?.price.id ?? null,
    tier: tierForPrice(ctx.config, item?.price.id),
    currentPeriodEnd: item?.current_period_end ? new Date(item.current_period_end * 1000) : null,
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
    endedAt: subscription.ended_at ? new Date(subscription.ended_at * 1000) : null,
    stripeCreatedAt: new Date(subscription.created * 1000),
    syncedAt: new Date(),
  };
  if (values.tier === null && values.priceId) {
    ctx.logger.warn({ subscription: subscription.id, price: values.priceId }, "subscription price maps to no tier");
  }
  const { id: _id, ...changes } = values;
  await tx.insert(subscriptions).values(values).onConflictDoUpdate({ target: subscriptions.id, set: changes });
  return applyTier(tx, customer, reason);
}

/** Sets the user's tier from their entitled subscriptions; a change goes to the outbox. */
async function applyTier(tx: Tx, customer: CustomerRow, reason: string): Promise<{ tier: Tier; changed: boolean }> {
  const rows = await tx.select().from(subscriptions).where(eq(subscriptions.userId, customer.userId));
  let tier: Tier = "free";
  for (const row of rows) {
    if (isEntitled(row) && row.tier && tierRank(row.tier) > tierRank(tier)) tier = row.tier;
  }
  if (tier === customer.tier) return { tier, changed: false };
  const occurredAt = Math.max(Date.now(), customer.tierChangedAt + 1);
  const event: TierChangedEvent = {
    eventId: crypto.randomUUID(),
    userId: customer.userId,
    tier,
    previousTier: customer.tier,
    reason,
    occurredAt,
  };
  await tx
    .update(customers)
    .set({ tier, tierChangedAt: occurredAt, updatedAt: new Date() })
    .where(eq(customers.userId, customer.userId));
  await tx.insert(outbox).values({ userId: customer.userId, event });
  customer.tier = tier;
  customer.tierChangedAt = occurredAt;
  return { tier, changed: true };
}

/** Stripe fields hold either an id or the expanded object. */
export function idOf(value: string | { id: string } | null | undefined): string {
  if (!value) return "";
  return typeof value === "string" ? value : value.id;
}
