import { createHash } from "node:crypto";
import Stripe from "stripe";
import { conflict, notFound, unavailable } from "../../shared/errors";
import type { Logger } from "../../shared/logger";
import { isMissing, stripeCall, stripeRemoval, toServiceError } from "../../shared/stripe-call";
import { type PluginPaymentsConfig, requirePluginStripe } from "./config";
import { type PaidPricingModel, PLUGIN_PURCHASE, publisherMetadata, purchaseMetadata } from "./metadata";

/** What the functions here need: the configuration (with its Stripe client) and a logger. */
export interface PaymentsDeps {
  config: PluginPaymentsConfig;
  logger: Logger;
}

/** Identical checkout requests within this window get the same Stripe session (double clicks), as billing's do. */
const DEDUPE_WINDOW_MS = 10 * 60_000;

/** A publisher's Stripe account as the marketplace needs it. */
export interface PublisherAccountStatus {
  accountId: string;
  /** Stripe lets the account be paid: its publisher's paid plugins can be sold. */
  chargesEnabled: boolean;
  payoutsEnabled: boolean;
  /** The publisher went through Stripe's onboarding (Stripe may still be verifying). */
  detailsSubmitted: boolean;
  /** What Stripe still asks of the publisher (its requirement names), for their dashboard. */
  currentlyDue: string[];
  /** Why Stripe does not let the account be paid yet (`requirements.past_due`...), null when it does. */
  disabledReason: string | null;
}

export function accountStatusOf(account: Stripe.Account): PublisherAccountStatus {
  return {
    accountId: account.id,
    chargesEnabled: account.charges_enabled,
    payoutsEnabled: account.payouts_enabled,
    detailsSubmitted: account.details_submitted,
    currentlyDue: account.requirements?.currently_due ?? [],
    disabledReason: account.requirements?.disabled_reason ?? null,
  };
}

/**
 * Creates a publisher's Express account: Stripe onboards them and pays them out; the platform keeps
 * its fee from each sale. The idempotency key makes a retry after a crash between Stripe's answer and
 * our commit get the same account back (within Stripe's 24 hours); the caller stores the account id
 * with the developer account, under that row's lock, and never calls this for a publisher that has one.
 */
export async function createPublisherAccount(
  deps: PaymentsDeps,
  input: { publisherId: string; email?: string; country?: string },
): Promise<PublisherAccountStatus> {
  const stripe = requirePluginStripe(deps.config);
  const account = await stripeCall(deps.logger, "accounts.create", () =>
    stripe.accounts.create(
      {
        type: "express",
        ...(input.email ? { email: input.email } : {}),
        ...(input.country ? { country: input.country } : {}),
        // Destination charges need `transfers`; `card_payments` lets the account be paid by card.
        capabilities: { card_payments: { requested: true }, transfers: { requested: true } },
        metadata: publisherMetadata(input.publisherId),
      },
      { idempotencyKey: `publisher-account:${input.publisherId}` },
    ),
  );
  return accountStatusOf(account);
}

/**
 * A link to Stripe's onboarding for the account; 404 for an account Stripe does not know. No
 * idempotency key of ours: a link works once and for a few minutes, so a second request must get a
 * fresh one (the SDK keys its own retries). `refreshUrl` is where an expired or used link sends the
 * publisher: a page that asks for a new one.
 */
export async function createOnboardingLink(
  deps: PaymentsDeps,
  input: { accountId: string; refreshUrl: string; returnUrl: string },
): Promise<{ url: string; expiresAt: Date }> {
  const stripe = requirePluginStripe(deps.config);
  try {
    const link = await stripe.accountLinks.create({
      account: input.accountId,
      type: "account_onboarding",
      refresh_url: input.refreshUrl,
      return_url: input.returnUrl,
    });
    return { url: link.url, expiresAt: new Date(link.expires_at * 1000) };
  } catch (error) {
    if (isMissing(error)) throw notFound("publisher payment account");
    throw toServiceError(deps.logger, "accountLinks.create", error);
  }
}

/** The account's state, read from Stripe now; 404 for an account Stripe does not know (any more). */
export async function readPublisherAccount(deps: PaymentsDeps, accountId: string): Promise<PublisherAccountStatus> {
  const stripe = requirePluginStripe(deps.config);
  try {
    return accountStatusOf(await stripe.accounts.retrieve(accountId));
  } catch (error) {
    if (isMissing(error)) throw notFound("publisher payment account");
    throw toServiceError(deps.logger, "accounts.retrieve", error);
  }
}

/**
 * Deletes a publisher's Express account when their developer account is erased. An account Stripe
 * no longer has counts as deleted, so a redelivered erasure finishes. Anything else throws (Stripe
 * unreachable: 503; Stripe refusing, as it does while the account still holds a balance: 502), so
 * the erasure is tried again later.
 */
export async function deletePublisherAccount(deps: PaymentsDeps, accountId: string): Promise<void> {
  const stripe = requirePluginStripe(deps.config);
  await stripeRemoval(deps.logger, "accounts.del", () => stripe.accounts.del(accountId));
}

/**
 * Deletes a buyer's Stripe customer (one Checkout made for a purchase) when their account is erased,
 * as billing deletes its own: their name, address and saved cards stay with nobody. A customer Stripe
 * no longer has counts as deleted, so a redelivered erasure finishes; anything else throws (Stripe
 * unreachable: 503; refusing: 502), so the erasure is tried again later.
 */
export async function deleteBuyerCustomer(deps: PaymentsDeps, customerId: string): Promise<void> {
  const stripe = requirePluginStripe(deps.config);
  await stripeRemoval(deps.logger, "customers.del", () => stripe.customers.del(customerId));
}

/**
 * The subscription invoice a payment paid, or null for a payment no invoice names (a one-off
 * purchase's). A refund names only its payment intent, and since Stripe's 2025-03-31 API neither a
 * charge nor a payment intent names its invoice: the invoice's payments are asked for by payment.
 */
export async function invoicePaidBy(deps: PaymentsDeps, paymentIntentId: string): Promise<string | null> {
  const stripe = requirePluginStripe(deps.config);
  const page = await stripeCall(deps.logger, "invoicePayments.list", () =>
    stripe.invoicePayments.list({
      payment: { type: "payment_intent", payment_intent: paymentIntentId },
      status: "paid",
      limit: 1,
    }),
  );
  const invoice = page.data[0]?.invoice;
  if (!invoice) return null;
  return typeof invoice === "string" ? invoice : invoice.id;
}

/** The platform's fee on an amount in minor units, rounded to the nearest unit as Stripe rounds. */
export const platformFeeAmount = (amount: number, percent: number): number => Math.round((amount * percent) / 100);

/** A paid plugin version's price, as its manifest gives it. */
export interface PaidPricing {
  model: PaidPricingModel;
  /** In the currency's minor unit (cents). */
  amount: number;
  /** Lowercase ISO 4217 (`eur`). */
  currency: string;
}

export interface PluginCheckoutInput {
  userId: string;
  pluginId: string;
  version: string;
  /** Shown on Stripe's payment page and receipt. */
  pluginName: string;
  pricing: PaidPricing;
  /** The Express account of the plugin's publisher. */
  publisherAccountId: string;
  /** The buyer's Stripe customer, when the caller keeps one; otherwise Checkout asks for their address. */
  customerId?: string;
  successUrl: string;
  cancelUrl: string;
  /**
   * Tells apart requests that are the same but must not share a session: the caller's latest
   * purchase of the plugin, say, so a user who bought, was refunded and buys again within the
   * dedupe window gets a new session rather than the one already paid.
   */
  dedupeScope?: string;
}

export interface PluginCheckout {
  sessionId: string;
  url: string;
  /** One-off: the application fee taken from the payment. Monthly: null (the percent applies to each invoice). */
  platformFeeAmount: number | null;
  platformFeePercent: number;
}

/**
 * Starts buying a plugin version: a Checkout Session paying the publisher's account (a destination
 * charge), the platform keeping PLUGIN_PLATFORM_FEE_PERCENT. One-off: `mode=payment` with the fee as
 * `application_fee_amount`. Monthly: `mode=subscription` with it as `application_fee_percent` of every
 * invoice. The user, plugin and version go into the metadata of everything Stripe creates for it
 * (session, payment intent and charge, or subscription and invoices), which the webhook reads back.
 * Refused with 409 `publisher_not_payable` while Stripe does not let the publisher's account be paid,
 * read from Stripe now rather than from a stored copy that may lag.
 */
export async function createPluginCheckout(deps: PaymentsDeps, input: PluginCheckoutInput): Promise<PluginCheckout> {
  const stripe = requirePluginStripe(deps.config);
  const payable = await canBePaid(deps, stripe, input.publisherAccountId);
  if (!payable) {
    throw conflict("publisher_not_payable", "the publisher of this plugin cannot accept payments yet; try again later");
  }
  const { pricing } = input;
  const percent = deps.config.platformFeePercent;
  const fee = pricing.model === "one_off" ? platformFeeAmount(pricing.amount, percent) : null;
  const metadata = purchaseMetadata({
    userId: input.userId,
    pluginId: input.pluginId,
    version: input.version,
    model: pricing.model,
    platformFeePercent: percent,
    ...(fee === null ? {} : { platformFeeAmount: fee }),
  });
  const destination = { destination: input.publisherAccountId };
  const productData = { name: input.pluginName, metadata: { plugin_id: input.pluginId } };
  const common = {
    client_reference_id: input.userId,
    ...(input.customerId ? { customer: input.customerId } : {}),
    success_url: input.successUrl,
    cancel_url: input.cancelUrl,
    metadata,
  };
  const params: Stripe.Checkout.SessionCreateParams =
    pricing.model === "one_off"
      ? {
          ...common,
          mode: "payment",
          line_items: [
            {
              quantity: 1,
              price_data: { currency: pricing.currency, unit_amount: pricing.amount, product_data: productData },
            },
          ],
          payment_intent_data: { application_fee_amount: fee ?? 0, transfer_data: destination, metadata },
        }
      : {
          ...common,
          mode: "subscription",
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency: pricing.currency,
                unit_amount: pricing.amount,
                recurring: { interval: "month" },
                product_data: productData,
              },
            },
          ],
          subscription_data: { application_fee_percent: percent, transfer_data: destination, metadata },
        };
  const key = dedupeKey(input.userId, [
    input.pluginId,
    input.version,
    pricing.model,
    pricing.amount,
    pricing.currency,
    input.publisherAccountId,
    percent,
    input.customerId,
    input.successUrl,
    input.cancelUrl,
    input.dedupeScope,
  ]);
  const session = await stripeCall(deps.logger, "checkout.sessions.create", () =>
    stripe.checkout.sessions.create(params, { idempotencyKey: `plugin-checkout:${key}` }),
  );
  if (!session.url) throw unavailable("stripe_unavailable", "the payment provider returned no checkout page");
  return { sessionId: session.id, url: session.url, platformFeeAmount: fee, platformFeePercent: percent };
}

/** Whether Stripe lets the account be paid now; an account Stripe no longer knows cannot be. */
async function canBePaid(deps: PaymentsDeps, stripe: Stripe, accountId: string): Promise<boolean> {
  try {
    return (await stripe.accounts.retrieve(accountId)).charges_enabled;
  } catch (error) {
    if (isMissing(error)) return false;
    throw toServiceError(deps.logger, "accounts.retrieve", error);
  }
}

/**
 * Refunds a one-off purchase in full: the buyer gets everything back, the platform returns its fee
 * and the publisher's share is taken back from their account. The key makes a retry the same refund;
 * a purchase already refunded is 409 `already_refunded`. `charge.refunded` follows as a webhook.
 */
export async function refundPluginPurchase(
  deps: PaymentsDeps,
  paymentIntentId: string,
): Promise<{ refundId: string; amount: number; status: string | null }> {
  const stripe = requirePluginStripe(deps.config);
  try {
    const refund = await stripe.refunds.create(
      {
        payment_intent: paymentIntentId,
        refund_application_fee: true,
        reverse_transfer: true,
        metadata: { kind: PLUGIN_PURCHASE },
      },
      { idempotencyKey: `plugin-refund:${paymentIntentId}` },
    );
    return { refundId: refund.id, amount: refund.amount, status: refund.status };
  } catch (error) {
    if (error instanceof Stripe.errors.StripeError && error.code === "charge_already_refunded") {
      throw conflict("already_refunded", "this purchase has already been refunded");
    }
    throw toServiceError(deps.logger, "refunds.create", error);
  }
}

/**
 * Ends a monthly plugin subscription: at the end of the paid period (the user keeps the plugin until
 * then; `customer.subscription.deleted` follows at that date), or at once (account deletion). A
 * subscription Stripe no longer has counts as ended.
 */
export async function cancelPluginSubscription(
  deps: PaymentsDeps,
  subscriptionId: string,
  when: "period_end" | "now",
): Promise<void> {
  const stripe = requirePluginStripe(deps.config);
  if (when === "now") {
    // Ending at once is the same operation however often it is asked: one key per subscription.
    await stripeRemoval(deps.logger, "subscriptions.cancel", () =>
      stripe.subscriptions.cancel(subscriptionId, {}, { idempotencyKey: `plugin-cancel:${subscriptionId}` }),
    );
    return;
  }
  // A fresh key per request, as billing's cancel: the SDK's retries reuse it, a later request is its own.
  await stripeRemoval(deps.logger, "subscriptions.update", () =>
    stripe.subscriptions.update(
      subscriptionId,
      { cancel_at_period_end: true },
      { idempotencyKey: `plugin-cancel-at-period-end:${subscriptionId}:${crypto.randomUUID()}` },
    ),
  );
}

/**
 * Undoes `cancelPluginSubscription(…, "period_end")` while the period still runs: the subscription
 * renews again (`cancel_at_period_end=false`). `ended`: Stripe has no running subscription to keep
 * (deleted, or canceled meanwhile); its `customer.subscription.deleted` ends the purchase.
 */
export async function keepPluginSubscription(deps: PaymentsDeps, subscriptionId: string): Promise<"kept" | "ended"> {
  const stripe = requirePluginStripe(deps.config);
  try {
    // A fresh key per request, as the cancellation's: a later cancel and keep must each reach Stripe.
    await stripe.subscriptions.update(
      subscriptionId,
      { cancel_at_period_end: false },
      { idempotencyKey: `plugin-keep:${subscriptionId}:${crypto.randomUUID()}` },
    );
    return "kept";
  } catch (error) {
    const canceled =
      error instanceof Stripe.errors.StripeError && error.code === "invalid_canceled_subscription_fields";
    if (isMissing(error) || canceled) return "ended";
    throw toServiceError(deps.logger, "subscriptions.update", error);
  }
}

function dedupeKey(userId: string, parts: Array<string | number | null | undefined>): string {
  const window = Math.floor(Date.now() / DEDUPE_WINDOW_MS);
  const digest = createHash("sha256")
    .update(JSON.stringify([...parts, window]))
    .digest("hex")
    .slice(0, 32);
  return `${userId}:${digest}`;
}
