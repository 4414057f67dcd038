import { eq } from "drizzle-orm";
import { stripeCall } from "../shared/stripe-call";
import { requireStripe } from "./config";
import type { BillingContext } from "./context";
import { lockCustomer } from "./sync";
import { customers } from "./tables";

/**
 * The user's Stripe customer id, creating the customer once. Concurrent callers queue on the
 * customer row lock, and the idempotency key makes a retry after a crash between Stripe's answer
 * and our commit get the same customer back instead of a second one.
 */
export async function ensureCustomer(ctx: BillingContext, userId: string): Promise<string> {
  const existing = await findCustomerId(ctx, userId);
  if (existing) return existing;
  const stripe = requireStripe(ctx.config);
  return ctx.db.transaction(async (tx) => {
    const row = await lockCustomer(tx, userId);
    if (row.stripeCustomerId) return row.stripeCustomerId;
    const customer = await stripeCall(ctx.logger, "customers.create", () =>
      stripe.customers.create({ metadata: { user_id: userId } }, { idempotencyKey: `customer:${userId}` }),
    );
    await tx
      .update(customers)
      .set({ stripeCustomerId: customer.id, updatedAt: new Date() })
      .where(eq(customers.userId, userId));
    return customer.id;
  });
}

/** The user's Stripe customer id if they ever started a checkout. */
export async function findCustomerId(ctx: BillingContext, userId: string): Promise<string | undefined> {
  const [row] = await ctx.db
    .select({ id: customers.stripeCustomerId })
    .from(customers)
    .where(eq(customers.userId, userId));
  return row?.id ?? undefined;
}
