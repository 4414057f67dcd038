import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import { perMinute, rateLimitByTier, routeRateLimit } from "../shared/rate-limit";
import { sanitizer } from "../shared/sanitizer";
import { createCheckout } from "./checkout";
import type { BillingContext } from "./context";
import { CancelQuery, CheckoutInput, PortalInput } from "./model";
import { createPortal } from "./portal";
import { cancelSubscription, getSubscription } from "./subscription";
import { handleWebhook } from "./webhook";

/** Small bodies only: the largest is a checkout with two redirect URLs. */
const MAX_BILLING_BODY_BYTES = 8192;

/** Checkout and portal open Stripe sessions: one small budget for both, besides the service's. */
export const SESSIONS_POLICY = "billing-sessions";

export function billingRoutes(ctx: BillingContext, prefix: string) {
  const sessionLimit = routeRateLimit(ctx.platform, SESSIONS_POLICY, perMinute("billingSessionsPerMinute"));
  return (
    new Elysia({ name: "billing", prefix })
      // Public (Stripe calls it) and unparsed: the signature covers the exact bytes sent.
      .post(
        "/webhook",
        async ({ request }) =>
          handleWebhook({
            ctx,
            input: {
              payload: new Uint8Array(await request.arrayBuffer()),
              signature: request.headers.get("stripe-signature"),
            },
          }),
        { parse: "none", detail: { summary: "Stripe webhook endpoint (signed)" } },
      )
      // Guard first: a caller without a valid token learns nothing about its body.
      .use(authGuard(ctx.platform.verifier, ctx.logger))
      .use(sanitizer({ maxBodyBytes: MAX_BILLING_BODY_BYTES }))
      .use(rateLimitByTier(ctx.platform, "billing"))
      .post("/checkout", ({ user, body }) => createCheckout({ ctx: { ...ctx, user }, input: body }), {
        body: CheckoutInput,
        beforeHandle: sessionLimit,
        detail: { summary: "Start buying a paid tier (or changing to it)" },
      })
      .get("/subscription", ({ user }) => getSubscription({ ctx: { ...ctx, user } }), {
        detail: { summary: "The caller's tier and subscription" },
      })
      .delete("/subscription", ({ user, query }) => cancelSubscription({ ctx: { ...ctx, user }, input: query }), {
        query: CancelQuery,
        detail: { summary: "Cancel at the end of the paid period (or ?immediately=true)" },
      })
      .post("/portal", ({ user, body }) => createPortal({ ctx: { ...ctx, user }, input: body ?? {} }), {
        body: PortalInput.optional(),
        beforeHandle: sessionLimit,
        detail: { summary: "A Stripe customer-portal session" },
      })
  );
}
