import { Elysia } from "elysia";
import { JSON_BODY, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { perMinute, routeRateLimit } from "../shared/rate-limit";
import { stripeWebhookRoute } from "../shared/stripe-webhook-route";
import { createCheckout } from "./checkout";
import type { BillingContext } from "./context";
import {
  CancelQuery,
  CheckoutInput,
  CheckoutResult,
  PortalInput,
  PortalResult,
  SubscriptionView,
  WebhookResult,
} from "./model";
import { createPortal } from "./portal";
import { cancelSubscription, getSubscription } from "./subscription";
import { handleWebhook } from "./webhook";

/** Small bodies only: the largest is a checkout with two redirect URLs. */
const MAX_BILLING_BODY_BYTES = 8192;

/** Checkout and portal open Stripe sessions: one small budget for both, besides the service's. */
export const SESSIONS_POLICY = "billing-sessions";

/** Where Traefik sends the billing service's traffic; literal, so typed clients know every path. */
export const BILLING_PREFIX = "/api/v1/billing" as const;

export function billingRoutes(ctx: BillingContext) {
  const { platform, limiter } = ctx;
  const sessionLimit = routeRateLimit(platform, SESSIONS_POLICY, perMinute("billingSessionsPerMinute"), limiter);
  return new Elysia({ name: "billing", prefix: BILLING_PREFIX, tags: ["billing"] })
    .use(
      stripeWebhookRoute({
        path: "/webhook",
        result: WebhookResult,
        summary: "Stripe webhook endpoint (signed)",
        description: "Called by Stripe: the `Stripe-Signature` header signs the exact bytes of the event.",
        receive: (input) => handleWebhook({ ctx, input }),
      }),
    )
    .use(
      protectedRoutes({
        platform,
        service: "billing",
        logger: ctx.logger,
        limiter,
        maxBodyBytes: MAX_BILLING_BODY_BYTES,
      }),
    )
    .post("/checkout", ({ user, body }) => createCheckout({ ctx, user, input: body }), {
      body: CheckoutInput,
      beforeHandle: sessionLimit,
      // 409: already on that tier; 502/503: Stripe refused or is unreachable, or billing is off.
      response: responses({ 200: CheckoutResult }, ...SIGNED_IN, ...JSON_BODY, 409, 502),
      detail: { summary: "Start buying a paid tier (or changing to it)" },
    })
    .get("/subscription", ({ user }) => getSubscription({ ctx, user, input: undefined }), {
      response: responses({ 200: SubscriptionView }, ...SIGNED_IN),
      detail: { summary: "The caller's tier and subscription" },
    })
    .delete("/subscription", ({ user, query }) => cancelSubscription({ ctx, user, input: query }), {
      query: CancelQuery,
      response: responses({ 200: SubscriptionView }, ...SIGNED_IN, 404, 422, 502),
      detail: { summary: "Cancel at the end of the paid period (or ?immediately=true)" },
    })
    .post("/portal", ({ user, body }) => createPortal({ ctx, user, input: body ?? {} }), {
      body: PortalInput.optional(),
      beforeHandle: sessionLimit,
      response: responses({ 200: PortalResult }, ...SIGNED_IN, ...JSON_BODY, 404, 502),
      detail: { summary: "A Stripe customer-portal session" },
    });
}
