import { desc, eq } from "drizzle-orm";
import type { Database } from "../shared/db";
import { notFound } from "../shared/errors";
import { stripeCall } from "../shared/stripe-call";
import { tierRank } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import { requireStripe } from "./config";
import type { BillingContext } from "./context";
import type { CancelQuery, SubscriptionView } from "./model";
import { isEntitled, lockCustomer, type SubscriptionRow, storeSubscription } from "./sync";
import { customers, subscriptions } from "./tables";

/**
 * The subscription that decides the user's tier: the entitled one with the highest tier, else
 * the most recent one (so a lapsed subscriber still sees what ended).
 */
export async function currentSubscription(db: Database, userId: string): Promise<SubscriptionRow | undefined> {
  const rows = await db
    .select()
    .from(subscriptions)
    .where(eq(subscriptions.userId, userId))
    .orderBy(desc(subscriptions.stripeCreatedAt));
  const entitled = rows.filter(isEntitled).sort((a, b) => tierRank(b.tier ?? "free") - tierRank(a.tier ?? "free"));
  return entitled[0] ?? rows[0];
}

export async function getSubscription({ ctx, user }: VerbArgs<BillingContext>): Promise<SubscriptionView> {
  const [customer] = await ctx.db.select().from(customers).where(eq(customers.userId, user.userId));
  const row = await currentSubscription(ctx.db, user.userId);
  return {
    tier: customer?.tier ?? "free",
    status: row?.status ?? "none",
    current_period_end: row?.currentPeriodEnd?.toISOString() ?? null,
    cancel_at_period_end: row?.cancelAtPeriodEnd ?? false,
  };
}

/**
 * Cancels the user's subscription at the end of the paid period (or now), storing Stripe's answer
 * at once; the webhook that follows finds nothing new. The tier falls when Stripe says it ended.
 */
export async function cancelSubscription({
  ctx,
  user,
  input,
}: VerbArgs<BillingContext, CancelQuery>): Promise<SubscriptionView> {
  const immediately = input.immediately === "true";
  const userId = user.userId;
  const current = await currentSubscription(ctx.db, userId);
  if (!current || !isEntitled(current)) throw notFound("subscription");
  if (!immediately && current.cancelAtPeriodEnd) return getSubscription({ ctx, user, input: undefined });
  const stripe = requireStripe(ctx.config);
  const { changed } = await ctx.db.transaction(async (tx) => {
    const customer = await lockCustomer(tx, userId);
    const idempotencyKey = `cancel:${current.id}:${crypto.randomUUID()}`;
    const subscription = await stripeCall(ctx.logger, "subscriptions.cancel", () =>
      immediately
        ? stripe.subscriptions.cancel(current.id, {}, { idempotencyKey })
        : stripe.subscriptions.update(current.id, { cancel_at_period_end: true }, { idempotencyKey }),
    );
    return storeSubscription(ctx, tx, customer, subscription, "subscription.canceled_by_user");
  });
  if (changed) ctx.notifyOutbox();
  return getSubscription({ ctx, user, input: undefined });
}
