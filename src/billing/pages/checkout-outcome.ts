import { and, eq } from "drizzle-orm";
import Stripe from "stripe";
import type { PaidTier } from "../config";
import type { BillingContext } from "../context";
import { idOf, isEntitled } from "../sync";
import { customers, subscriptions } from "../tables";

/**
 * What the success page may say about a Checkout Session, and nothing more: the plan once the
 * webhook has applied it, "pending" while it has not, "unknown" for anything it cannot vouch for.
 */
export type CheckoutOutcome = { state: "active"; plan: PaidTier } | { state: "pending" } | { state: "unknown" };

const UNKNOWN: CheckoutOutcome = { state: "unknown" };
const PENDING: CheckoutOutcome = { state: "pending" };

/** Stripe's Checkout Session ids; anything else is refused before Stripe is asked. */
const SESSION_ID = /^cs_[A-Za-z0-9_]{8,250}$/;

/**
 * A session id is as good as a bearer token for this page: logs carry its first characters only,
 * enough to tell test from live and to match a support request.
 */
export const sessionHint = (sessionId: string): string => `${sessionId.slice(0, 12)}…`;

/**
 * The outcome of the Checkout Session `sessionId`, confirmed with Stripe. The page takes no token,
 * so the id in the URL (which Stripe put in the payer's browser) is the only credential, and the
 * answer is limited to what that id may reveal: the plan name, once the session is `complete`, is
 * a subscription checkout of a customer this deployment created for the user named in
 * `client_reference_id`, and the subscription it bought is stored for that same user. Any other
 * case (a forged id, another account's session, one still open or expired, a customer we did not
 * create) reads as "unknown", the same for all, so the page tells them apart for no one.
 */
export async function checkoutOutcome(ctx: BillingContext, sessionId: string | null): Promise<CheckoutOutcome> {
  if (!sessionId || !SESSION_ID.test(sessionId)) return UNKNOWN;
  const session = await retrieveSession(ctx, sessionId);
  if (session?.status !== "complete" || session.mode !== "subscription") return UNKNOWN;
  const customerId = idOf(session.customer);
  const subscriptionId = idOf(session.subscription);
  if (!customerId || !subscriptionId) return UNKNOWN;
  const [customer] = await ctx.db
    .select({ userId: customers.userId })
    .from(customers)
    .where(eq(customers.stripeCustomerId, customerId));
  if (!customer || session.client_reference_id !== customer.userId) return UNKNOWN;
  const [subscription] = await ctx.db
    .select()
    .from(subscriptions)
    .where(and(eq(subscriptions.id, subscriptionId), eq(subscriptions.userId, customer.userId)));
  // Paid at Stripe, not yet told by the webhook: the page polls until it is.
  if (!subscription) return PENDING;
  if (!isEntitled(subscription) || !subscription.tier || subscription.tier === "free") return UNKNOWN;
  return { state: "active", plan: subscription.tier };
}

/**
 * The session from Stripe, or undefined when Stripe has no such session for this account or
 * cannot answer now. Stripe's error messages quote the id, so only the hint is logged.
 */
async function retrieveSession(ctx: BillingContext, sessionId: string): Promise<Stripe.Checkout.Session | undefined> {
  const stripe = ctx.config.stripe;
  if (!stripe) return undefined;
  try {
    return await stripe.checkout.sessions.retrieve(sessionId);
  } catch (error) {
    if (!(error instanceof Stripe.errors.StripeError)) throw error;
    const missing = error.code === "resource_missing";
    ctx.logger[missing ? "info" : "warn"](
      { session: sessionHint(sessionId), status: error.statusCode, type: error.type },
      missing ? "checkout session not found" : "checkout session could not be confirmed",
    );
    return undefined;
  }
}
