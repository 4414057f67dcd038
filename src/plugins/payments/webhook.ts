import Stripe from "stripe";
import { z } from "zod";
import { badRequest, UnconfiguredError } from "../../shared/errors";
import type { Logger } from "../../shared/logger";
import type { Metrics } from "../../shared/metrics";
import type { PluginPaymentsConfig } from "./config";
import { type PaidPricingModel, type PurchaseRef, readPublisherId, readPurchaseMetadata } from "./metadata";
import { accountStatusOf, type PublisherAccountStatus } from "./stripe-connect";

/**
 * Plugin payments' Stripe webhook, in two halves. The pure half verifies a delivery and turns its
 * event into a domain outcome (`outcomeOf`): a publisher's account changed, a purchase was paid or
 * refunded, a subscription ended, resumed or was renewed, or nothing of ours. The other half is the plugins
 * service's: a `PaymentOutcomeHandler` applies an outcome to its tables.
 *
 * Idempotency: Stripe delivers at least once, sometimes twice at the same moment, and out of order.
 * Every outcome carries its event's id (`eventId`; the same delivery twice gives the same outcome,
 * id included). The handler inserts that id into a processed-events table in the same transaction as
 * the outcome's effect, first, with ON CONFLICT DO NOTHING: a second delivery finds the id and
 * changes nothing ("duplicate"), two concurrent ones serialise on the primary key, and a failed
 * transaction records nothing, so Stripe's redelivery applies it (billing's webhook does the same).
 */

interface OutcomeBase {
  /** The Stripe event's id: what the handler records to apply each event once. */
  eventId: string;
  /** When Stripe created the event (ms since epoch): orders the outcomes of one subscription or account. */
  occurredAt: number;
}

/** `account.updated` of a publisher's Express account: store the flags, sell their plugins once `chargesEnabled`. */
export interface PublisherAccountUpdated extends OutcomeBase {
  kind: "publisher_account_updated";
  publisherId: string;
  account: PublisherAccountStatus;
}

/**
 * A purchase paid (`checkout.session.completed` once paid, or `checkout.session.async_payment_succeeded`):
 * the user may install that version. One-off: `paymentIntentId` names the payment (what a refund
 * names). Monthly: `subscriptionId` names the subscription (what its end names); `amount` and
 * `platformFee` are the first month's, which `firstInvoiceId` paid (what a refund of it is matched with).
 */
export interface PurchasePaid extends OutcomeBase, PurchaseRef {
  kind: "purchase_paid";
  model: PaidPricingModel;
  /** What the buyer paid, in the currency's minor unit. */
  amount: number;
  currency: string;
  /** The platform's share of `amount`; the publisher's account gets the rest. */
  platformFee: number;
  checkoutSessionId: string;
  paymentIntentId: string | null;
  subscriptionId: string | null;
  /** Monthly: the subscription's first invoice, the one Checkout made (the session's `invoice`). */
  firstInvoiceId: string | null;
  customerId: string | null;
}

/**
 * `charge.refunded` of a destination charge: money went back to the buyer. The handler keeps it by
 * `paymentIntentId` (the completion of a purchase it does not know yet reads it there; a
 * subscription invoice's counts against its renewal, or the first invoice's against its purchase),
 * finds a one-off purchase by it and withdraws the entitlement when `fullyRefunded`.
 */
export interface PurchaseRefunded extends OutcomeBase {
  kind: "purchase_refunded";
  paymentIntentId: string;
  chargeId: string;
  /** Refunded so far, in all (a partial refund's events each carry the running total). */
  amountRefunded: number;
  currency: string;
  fullyRefunded: boolean;
  /** The purchase, when the charge carries its metadata; the payment intent id is what identifies it. */
  purchase: PurchaseRef | null;
}

/**
 * A monthly plugin's subscription stopped paying for it. `canceled`: for good (deleted, or expired
 * before the first payment). `lapsed`: Stripe gave up collecting (unpaid, paused, or the last retry of
 * a renewal failed); a later payment can resume it.
 */
export interface SubscriptionEnded extends OutcomeBase, PurchaseRef {
  kind: "subscription_ended";
  subscriptionId: string;
  reason: "canceled" | "lapsed";
  /** Stripe's subscription status when the event was made. */
  status: string;
}

/** A lapsed subscription paid again (`unpaid` or `paused` to `active`): the entitlement comes back. */
export interface SubscriptionResumed extends OutcomeBase, PurchaseRef {
  kind: "subscription_resumed";
  subscriptionId: string;
  status: string;
}

/**
 * A monthly plugin's renewal paid (`invoice.paid`, and `invoice.payment_succeeded` of the same
 * invoice): a payment the publisher's sales count, with the platform's fee of it. The subscription's
 * first invoice is not one: its Checkout's completion records that payment.
 */
export interface SubscriptionRenewed extends OutcomeBase, PurchaseRef {
  kind: "subscription_renewed";
  subscriptionId: string;
  /** What the same invoice's two events share: it is counted once. */
  invoiceId: string;
  /** What the buyer paid for the period, in the currency's minor unit. */
  amount: number;
  currency: string;
  /** The platform's share of `amount` (the subscription's `application_fee_percent`). */
  platformFee: number;
}

export type IgnoredReason =
  /** An event type plugin payments do not act on. */
  | "unhandled_type"
  /** Not a plugin purchase or publisher account: billing's tier subscriptions, a dashboard payment. */
  | "not_ours"
  /** Our kind, but its metadata lacks fields: logged, never applied. */
  | "malformed_metadata"
  /** Checkout completed with a payment still processing (a bank debit): `async_payment_succeeded` follows. */
  | "payment_pending"
  /** A change that neither ends nor resumes anything: a renewal failing while Stripe retries, past_due. */
  | "no_change"
  /** A subscription's first invoice paid: the Checkout's `completed` records that payment. */
  | "first_invoice";

export interface Ignored extends OutcomeBase {
  kind: "ignored";
  type: string;
  reason: IgnoredReason;
}

/** What one Stripe event means for plugins. */
export type PaymentOutcome =
  | PublisherAccountUpdated
  | PurchasePaid
  | PurchaseRefunded
  | SubscriptionEnded
  | SubscriptionResumed
  | SubscriptionRenewed
  | Ignored;

/** The outcomes a handler applies. */
export type AppliedOutcome = Exclude<PaymentOutcome, Ignored>;

/** `duplicate`: the outcome's `eventId` was already recorded, nothing changed. */
export type ApplyResult = "processed" | "duplicate";

/**
 * Applies outcomes to the plugins service's tables; implemented there. For each outcome, in ONE
 * transaction: insert `eventId` into the processed-events table (ON CONFLICT DO NOTHING) and, if the
 * row already existed, return "duplicate" without changing anything; otherwise apply the effect and
 * return "processed". Throw to refuse the delivery (503): nothing is recorded and Stripe sends it again.
 *
 * Subscriptions: `canceled` is final, so a late `subscription_resumed` never revives a canceled
 * subscription; keep the newest `occurredAt` applied per subscription and skip older outcomes. An
 * end may arrive before the `purchase_paid` of its subscription, and a refund before that of its
 * payment: keep them, so that payment grants nothing. A `subscription_renewed` is counted once per
 * `invoiceId`.
 */
export interface PaymentOutcomeHandler {
  apply(outcome: AppliedOutcome): Promise<ApplyResult>;
}

export interface PaymentWebhookInput {
  /** The body exactly as received: the signature covers these bytes. */
  payload: Uint8Array | string;
  signature: string | null;
}

export const PaymentWebhookResult = z.object({
  received: z.literal(true),
  /** `processed`, `duplicate` (seen before), or `ignored` (nothing plugins act on). */
  outcome: z.enum(["processed", "duplicate", "ignored"]),
});
export type PaymentWebhookResult = z.infer<typeof PaymentWebhookResult>;

/**
 * Checks the `Stripe-Signature` header against each configured secret (the purchases endpoint's,
 * the Connect endpoint's) within the tolerance, and parses the event. 400 `invalid_signature` for a
 * missing, forged, stale or tampered delivery, or a signed body that is not JSON; 503 while no
 * secret is configured.
 */
export async function verifyPaymentEvent(
  config: PluginPaymentsConfig,
  logger: Logger,
  input: PaymentWebhookInput,
): Promise<Stripe.Event> {
  if (config.webhookSecrets.length === 0) {
    throw new UnconfiguredError("plugin_payments_unconfigured", "plugin payment webhooks are not configured", [
      "PLUGINS_STRIPE_WEBHOOK_SECRET",
    ]);
  }
  if (!input.signature) throw badRequest("invalid_signature", "missing Stripe-Signature header");
  let failure: unknown;
  for (const secret of config.webhookSecrets) {
    try {
      return await Stripe.webhooks.constructEventAsync(
        input.payload,
        input.signature,
        secret,
        config.webhookToleranceS,
      );
    } catch (error) {
      failure = error;
      // Only a signature mismatch is worth the next secret; a signed body that is not JSON is not.
      if (!(error instanceof Stripe.errors.StripeSignatureVerificationError)) break;
    }
  }
  logger.info({ err: (failure as Error).message }, "plugin payment webhook signature rejected");
  throw badRequest("invalid_signature", "webhook signature verification failed");
}

/** The domain outcome of one verified event. Pure: the same event always gives the same outcome. */
export function outcomeOf(event: Stripe.Event): PaymentOutcome {
  const base = { eventId: event.id, occurredAt: event.created * 1000 };
  const ignored = (reason: IgnoredReason): Ignored => ({ kind: "ignored", ...base, type: event.type, reason });
  switch (event.type) {
    case "account.updated": {
      const publisherId = readPublisherId(event.data.object.metadata);
      if (!publisherId) return ignored("not_ours");
      return { kind: "publisher_account_updated", ...base, publisherId, account: accountStatusOf(event.data.object) };
    }
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded":
      return purchaseOutcome(event.data.object, base, ignored);
    case "charge.refunded":
      return refundOutcome(event.data.object, base, ignored);
    case "customer.subscription.deleted":
    case "customer.subscription.updated": {
      const subscription = event.data.object;
      const terms = readPurchaseMetadata(subscription.metadata);
      if (terms === "not_ours") return ignored("not_ours");
      if (terms === "malformed") return ignored("malformed_metadata");
      const ref = { userId: terms.userId, pluginId: terms.pluginId, version: terms.version };
      const common = { ...base, ...ref, subscriptionId: subscription.id, status: subscription.status };
      if (event.type === "customer.subscription.deleted" || CANCELED.has(subscription.status)) {
        return { kind: "subscription_ended", ...common, reason: "canceled" };
      }
      if (LAPSED.has(subscription.status)) return { kind: "subscription_ended", ...common, reason: "lapsed" };
      const before = event.data.previous_attributes?.status;
      if (before && LAPSED.has(before)) return { kind: "subscription_resumed", ...common };
      return ignored("no_change");
    }
    case "invoice.paid":
    case "invoice.payment_succeeded":
      return renewalOutcome(event.data.object, base, ignored);
    case "invoice.payment_failed": {
      const invoice = event.data.object;
      const details = invoice.parent?.subscription_details;
      const terms = readPurchaseMetadata(details?.metadata);
      if (terms === "not_ours") return ignored("not_ours");
      if (terms === "malformed") return ignored("malformed_metadata");
      // While Stripe retries, the plugin stays, as a tier does while past_due; the last failure ends it.
      if (invoice.next_payment_attempt !== null) return ignored("no_change");
      const subscriptionId = idOf(details?.subscription);
      if (!subscriptionId) return ignored("not_ours");
      return {
        kind: "subscription_ended",
        ...base,
        userId: terms.userId,
        pluginId: terms.pluginId,
        version: terms.version,
        subscriptionId,
        reason: "lapsed",
        status: "payment_failed",
      };
    }
    default:
      return ignored("unhandled_type");
  }
}

/** Statuses after which a subscription never pays again. */
const CANCELED = new Set<string>(["canceled", "incomplete_expired"]);
/** Statuses in which Stripe stopped collecting, but a payment can bring the subscription back. */
const LAPSED = new Set<string>(["unpaid", "paused"]);

function purchaseOutcome(
  session: Stripe.Checkout.Session,
  base: OutcomeBase,
  ignored: (reason: IgnoredReason) => Ignored,
): PaymentOutcome {
  const terms = readPurchaseMetadata(session.metadata);
  if (terms === "not_ours") return ignored("not_ours");
  if (terms === "malformed") return ignored("malformed_metadata");
  if (session.payment_status !== "paid") return ignored("payment_pending");
  const amount = session.amount_total ?? 0;
  // One-off: the fee the payment carried. Monthly: the invoice's percent, as Stripe computes it.
  const platformFee = terms.platformFeeAmount ?? Math.round((amount * terms.platformFeePercent) / 100);
  const subscriptionId = idOf(session.subscription) || null;
  return {
    kind: "purchase_paid",
    ...base,
    userId: terms.userId,
    pluginId: terms.pluginId,
    version: terms.version,
    model: terms.model,
    amount,
    currency: session.currency ?? "",
    platformFee,
    checkoutSessionId: session.id,
    paymentIntentId: idOf(session.payment_intent) || null,
    subscriptionId,
    // A subscription's: a one-off session has an invoice only if it asked for a receipt one.
    firstInvoiceId: subscriptionId ? idOf(session.invoice) || null : null,
    customerId: idOf(session.customer) || null,
  };
}

function renewalOutcome(
  invoice: Stripe.Invoice,
  base: OutcomeBase,
  ignored: (reason: IgnoredReason) => Ignored,
): PaymentOutcome {
  const details = invoice.parent?.subscription_details;
  const terms = readPurchaseMetadata(details?.metadata);
  if (terms === "not_ours") return ignored("not_ours");
  if (terms === "malformed") return ignored("malformed_metadata");
  const subscriptionId = idOf(details?.subscription);
  if (!subscriptionId) return ignored("not_ours");
  if (invoice.billing_reason === "subscription_create") return ignored("first_invoice");
  // Nothing paid (a credit covered it): no sale to count.
  if (invoice.amount_paid <= 0) return ignored("no_change");
  return {
    kind: "subscription_renewed",
    ...base,
    userId: terms.userId,
    pluginId: terms.pluginId,
    version: terms.version,
    subscriptionId,
    invoiceId: invoice.id,
    amount: invoice.amount_paid,
    currency: invoice.currency,
    // The subscription's percent of the invoice, as Stripe computes the application fee.
    platformFee: Math.round((invoice.amount_paid * terms.platformFeePercent) / 100),
  };
}

function refundOutcome(
  charge: Stripe.Charge,
  base: OutcomeBase,
  ignored: (reason: IgnoredReason) => Ignored,
): PaymentOutcome {
  // A plugin sale is always a destination charge; billing's tier payments never are.
  const paymentIntentId = idOf(charge.payment_intent);
  if (!charge.transfer_data || !paymentIntentId) return ignored("not_ours");
  const terms = readPurchaseMetadata(charge.metadata);
  if (terms === "malformed") return ignored("malformed_metadata");
  const purchase =
    terms === "not_ours" ? null : { userId: terms.userId, pluginId: terms.pluginId, version: terms.version };
  if (charge.metadata?.kind && !purchase) return ignored("not_ours");
  return {
    kind: "purchase_refunded",
    ...base,
    paymentIntentId,
    chargeId: charge.id,
    amountRefunded: charge.amount_refunded,
    currency: charge.currency,
    fullyRefunded: charge.refunded,
    purchase,
  };
}

/**
 * Verifies one delivery, works out its outcome and has the handler apply it. Ignored events are
 * acknowledged without the handler (nothing to apply, nothing to record: a replay is ignored again).
 * For the plugins service's `POST /payments/webhook` (public, raw body, before the token guard).
 */
export async function handlePaymentWebhook(
  deps: { config: PluginPaymentsConfig; logger: Logger; metrics: Metrics; handler: PaymentOutcomeHandler },
  input: PaymentWebhookInput,
): Promise<PaymentWebhookResult> {
  const event = await verifyPaymentEvent(deps.config, deps.logger, input);
  const counter = deps.metrics.counter(
    "plugins_payment_webhook_events_total",
    "Stripe webhook events of plugin payments by outcome",
    ["type", "outcome"],
  );
  const outcome = outcomeOf(event);
  if (outcome.kind === "ignored") {
    if (outcome.reason === "malformed_metadata") {
      deps.logger.warn({ event: event.id, type: event.type }, "plugin payment event with malformed metadata");
    }
    counter.inc({ type: outcome.reason === "unhandled_type" ? "unhandled" : event.type, outcome: "ignored" });
    return { received: true, outcome: "ignored" };
  }
  const result = await deps.handler.apply(outcome);
  counter.inc({ type: event.type, outcome: result });
  return { received: true, outcome: result };
}

/** Stripe fields hold either an id or the expanded object. */
function idOf(value: string | { id: string } | null | undefined): string {
  if (!value) return "";
  return typeof value === "string" ? value : value.id;
}
