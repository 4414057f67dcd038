import { createHash } from "node:crypto";
import { conflict, UnconfiguredError, unavailable } from "../shared/errors";
import { stripeCall } from "../shared/stripe-call";
import type { VerbArgs } from "../shared/verb";
import { checkoutSuccessUrl, priceVariable, redirectUrl, requireStripe } from "./config";
import type { BillingContext } from "./context";
import { ensureCustomer } from "./customer";
import type { CheckoutInput, CheckoutResult } from "./model";
import { currentSubscription } from "./subscription";
import { isEntitled } from "./sync";

/** Identical checkout requests within this window get the same Stripe session (double clicks). */
const DEDUPE_WINDOW_MS = 10 * 60_000;

/**
 * Starts buying a tier: a Checkout Session for a new subscriber, or the portal's confirm page
 * for a subscriber who wants another tier, so nobody ends up paying for two subscriptions.
 */
export async function createCheckout({
  ctx,
  user,
  input,
}: VerbArgs<BillingContext, CheckoutInput>): Promise<CheckoutResult> {
  const price = ctx.config.prices[input.tier];
  // Every variable checkout lacks in one answer, so the operator fixes them in one go.
  const missing = [...(ctx.config.stripe ? [] : ["STRIPE_SECRET_KEY"]), ...(price ? [] : [priceVariable(input.tier)])];
  if (!ctx.config.stripe) {
    throw new UnconfiguredError("billing_unconfigured", "billing is not configured on this server", missing);
  }
  if (!price) {
    throw new UnconfiguredError("tier_unavailable", `the ${input.tier} tier is not for sale on this server`, missing);
  }
  const stripe = requireStripe(ctx.config);
  const successUrl = redirectUrl(ctx.config, "success_url", input.success_url, ctx.config.successUrl);
  const cancelUrl = redirectUrl(ctx.config, "cancel_url", input.cancel_url, ctx.config.cancelUrl);
  const userId = user.userId;
  const customer = await ensureCustomer(ctx, userId);
  const current = await currentSubscription(ctx.db, userId);
  const idempotencyKey = dedupeKey(userId, [input.tier, price, customer, successUrl, cancelUrl, current?.id]);

  if (current && isEntitled(current)) {
    if (current.tier === input.tier) {
      throw conflict("already_subscribed", `you already have the ${input.tier} tier; manage it in the billing portal`);
    }
    if (!current.itemId)
      throw conflict("subscription_not_changeable", "this subscription can only be changed in the billing portal");
    const session = await stripeCall(ctx.logger, "billingPortal.sessions.create", () =>
      stripe.billingPortal.sessions.create(
        {
          customer,
          return_url: cancelUrl,
          flow_data: {
            type: "subscription_update_confirm",
            subscription_update_confirm: {
              subscription: current.id,
              items: [{ id: current.itemId as string, price, quantity: 1 }],
            },
            after_completion: { type: "redirect", redirect: { return_url: successUrl } },
          },
        },
        { idempotencyKey: `change:${idempotencyKey}` },
      ),
    );
    return { mode: "change", url: session.url };
  }

  const session = await stripeCall(ctx.logger, "checkout.sessions.create", () =>
    stripe.checkout.sessions.create(
      {
        mode: "subscription",
        customer,
        client_reference_id: userId,
        line_items: [{ price, quantity: 1 }],
        success_url: checkoutSuccessUrl(ctx.config, successUrl),
        cancel_url: cancelUrl,
        metadata: { user_id: userId, tier: input.tier },
        subscription_data: { metadata: { user_id: userId } },
      },
      { idempotencyKey: `checkout:${idempotencyKey}` },
    ),
  );
  if (!session.url) throw unavailable("stripe_unavailable", "the payment provider returned no checkout page");
  return { mode: "checkout", url: session.url };
}

function dedupeKey(userId: string, parts: Array<string | null | undefined>): string {
  const window = Math.floor(Date.now() / DEDUPE_WINDOW_MS);
  const digest = createHash("sha256")
    .update(JSON.stringify([...parts, window]))
    .digest("hex")
    .slice(0, 32);
  return `${userId}:${digest}`;
}
