import { z } from "zod";

/**
 * The Stripe metadata a plugin purchase writes (on the Checkout Session, its payment intent and
 * charge, or its subscription and invoices) and its webhooks read back. `kind` tells a plugin
 * purchase from billing's tier subscriptions, which the same Stripe account also sends.
 */
export const PLUGIN_PURCHASE = "plugin_purchase";
/** `kind` of the Express accounts made for publishers. */
export const PLUGIN_PUBLISHER = "plugin_publisher";

export type PaidPricingModel = "one_off" | "monthly";

/** A plugin version a user buys: who, which plugin, which version. */
export interface PurchaseRef {
  userId: string;
  pluginId: string;
  version: string;
}

export interface PurchaseTerms extends PurchaseRef {
  model: PaidPricingModel;
  /** Percent of each payment the platform keeps. */
  platformFeePercent: number;
  /** One-off: the application fee in the currency's minor unit. Monthly: none, Stripe takes the percent of each invoice. */
  platformFeeAmount?: number;
}

/** Metadata values are strings in Stripe; numbers are written as decimal text. */
export function purchaseMetadata(terms: PurchaseTerms): Record<string, string> {
  return {
    kind: PLUGIN_PURCHASE,
    user_id: terms.userId,
    plugin_id: terms.pluginId,
    plugin_version: terms.version,
    pricing_model: terms.model,
    platform_fee_percent: String(terms.platformFeePercent),
    ...(terms.platformFeeAmount === undefined ? {} : { platform_fee_amount: String(terms.platformFeeAmount) }),
  };
}

const PurchaseMetadata = z.object({
  kind: z.literal(PLUGIN_PURCHASE),
  user_id: z.string().min(1),
  plugin_id: z.string().min(1),
  plugin_version: z.string().min(1),
  pricing_model: z.enum(["one_off", "monthly"]),
  platform_fee_percent: z.coerce.number().min(0).max(100),
  platform_fee_amount: z.coerce.number().int().min(0).optional(),
});

/**
 * Reads purchase metadata back: the terms, `not_ours` for another kind of payment (a tier
 * subscription, anything made in the dashboard), `malformed` for ours with fields missing.
 */
export function readPurchaseMetadata(
  metadata: Record<string, string> | null | undefined,
): PurchaseTerms | "not_ours" | "malformed" {
  if (metadata?.kind !== PLUGIN_PURCHASE) return "not_ours";
  const parsed = PurchaseMetadata.safeParse(metadata);
  if (!parsed.success) return "malformed";
  const data = parsed.data;
  return {
    userId: data.user_id,
    pluginId: data.plugin_id,
    version: data.plugin_version,
    model: data.pricing_model,
    platformFeePercent: data.platform_fee_percent,
    ...(data.platform_fee_amount === undefined ? {} : { platformFeeAmount: data.platform_fee_amount }),
  };
}

/** The metadata of a publisher's Express account: which developer account it pays. */
export function publisherMetadata(publisherId: string): Record<string, string> {
  return { kind: PLUGIN_PUBLISHER, publisher_id: publisherId };
}

/** The publisher an account was made for, or undefined for an account that is not a publisher's. */
export function readPublisherId(metadata: Record<string, string> | null | undefined): string | undefined {
  if (metadata?.kind !== PLUGIN_PUBLISHER || !metadata.publisher_id) return undefined;
  return metadata.publisher_id;
}
