import { z } from "zod";
import { named } from "../shared/contract";
import { Tier } from "../shared/tiers";
import { PAID_TIERS } from "./config";

const RedirectUrl = z.url().max(2048);

export const CheckoutInput = z
  .object({
    /** Only paid tiers can be bought; going back to free is a cancellation. */
    tier: z.enum(PAID_TIERS),
    success_url: RedirectUrl.optional(),
    cancel_url: RedirectUrl.optional(),
  })
  .strict();
export type CheckoutInput = z.infer<typeof CheckoutInput>;

export const CheckoutResult = z.object({
  /** `checkout`: a new subscription; `change`: the portal's confirm page for the existing one. */
  mode: z.enum(["checkout", "change"]),
  url: z.string(),
});
export type CheckoutResult = z.infer<typeof CheckoutResult>;

export const SubscriptionView = z.object({
  tier: Tier,
  /** Stripe's status, or `none` for a user who never subscribed. */
  status: z.string(),
  current_period_end: z.string().nullable(),
  cancel_at_period_end: z.boolean(),
});
export type SubscriptionView = z.infer<typeof SubscriptionView>;

export const CancelQuery = z
  .object({
    /** `true`: end now (the tier falls at once) instead of at the end of the paid period. */
    immediately: z.enum(["true", "false"]).default("false"),
  })
  .strict();
export type CancelQuery = z.infer<typeof CancelQuery>;

export const PortalInput = z
  .object({
    return_url: RedirectUrl.optional(),
  })
  .strict();
export type PortalInput = z.infer<typeof PortalInput>;

export const PortalResult = z.object({ url: z.string() });
export type PortalResult = z.infer<typeof PortalResult>;

export const WebhookResult = z.object({
  received: z.literal(true),
  /** `processed`, `duplicate` (seen before), or `ignored` (a type or object not ours). */
  outcome: z.enum(["processed", "duplicate", "ignored"]),
});
export type WebhookResult = z.infer<typeof WebhookResult>;

// Wire names of the models.
named("CheckoutInput", CheckoutInput);
named("CheckoutResult", CheckoutResult);
named("Subscription", SubscriptionView);
named("PortalInput", PortalInput);
named("PortalResult", PortalResult);
named("WebhookResult", WebhookResult);
