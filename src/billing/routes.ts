import { Elysia } from "elysia";
import { authGuard } from "../shared/auth/guard";
import { createCheckout } from "./checkout";
import type { BillingContext } from "./context";
import { CancelQuery, CheckoutInput, PortalInput } from "./model";
import { createPortal } from "./portal";
import { cancelSubscription, getSubscription } from "./subscription";
import { handleWebhook } from "./webhook";

export function billingRoutes(ctx: BillingContext, prefix: string) {
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
      .use(authGuard(ctx.platform.verifier, ctx.logger))
      .post("/checkout", ({ user, body }) => createCheckout({ ctx: { ...ctx, user }, input: body }), {
        body: CheckoutInput,
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
        detail: { summary: "A Stripe customer-portal session" },
      })
  );
}
