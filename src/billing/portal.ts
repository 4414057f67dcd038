import { notFound } from "../shared/errors";
import { stripeCall } from "../shared/stripe-call";
import type { VerbArgs } from "../shared/verb";
import { redirectUrl, requireStripe } from "./config";
import type { BillingContext } from "./context";
import { findCustomerId } from "./customer";
import type { PortalInput, PortalResult } from "./model";

/** A Stripe customer-portal session for the user's own customer; 404 before any checkout. */
export async function createPortal({ ctx, user, input }: VerbArgs<BillingContext, PortalInput>): Promise<PortalResult> {
  const stripe = requireStripe(ctx.config);
  const returnUrl = redirectUrl(ctx.config, "return_url", input.return_url, ctx.config.portalReturnUrl);
  const customer = await findCustomerId(ctx, user.userId);
  if (!customer) throw notFound("billing account");
  const session = await stripeCall(ctx.logger, "billingPortal.sessions.create", () =>
    stripe.billingPortal.sessions.create(
      { customer, return_url: returnUrl },
      { idempotencyKey: `portal:${user.userId}:${crypto.randomUUID()}` },
    ),
  );
  return { url: session.url };
}
