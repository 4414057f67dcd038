import { notFound } from "../shared/errors";
import { redirectUrl, requireStripe } from "./config";
import type { UserContext } from "./context";
import { findCustomerId } from "./customer";
import type { PortalInput, PortalResult } from "./model";
import { stripeCall } from "./stripe-call";

/** A Stripe customer-portal session for the user's own customer; 404 before any checkout. */
export async function createPortal({ ctx, input }: { ctx: UserContext; input: PortalInput }): Promise<PortalResult> {
  const stripe = requireStripe(ctx.config);
  const returnUrl = redirectUrl(ctx.config, "return_url", input.return_url, ctx.config.portalReturnUrl);
  const customer = await findCustomerId(ctx, ctx.user.userId);
  if (!customer) throw notFound("billing account");
  const session = await stripeCall(ctx.logger, "billingPortal.sessions.create", () =>
    stripe.billingPortal.sessions.create(
      { customer, return_url: returnUrl },
      { idempotencyKey: `portal:${ctx.user.userId}:${crypto.randomUUID()}` },
    ),
  );
  return { url: session.url };
}
