import type Stripe from "stripe";
import { badRequest, unavailable } from "../shared/errors";
import { isMissing, toServiceError } from "../shared/stripe-call";
import type { PublicVerbArgs } from "../shared/verb";
import { requireStripe } from "./config";
import type { BillingContext } from "./context";
import type { WebhookResult } from "./model";
import { idOf, lockCustomerByStripeId, storeSubscription } from "./sync";
import { processedEvents } from "./tables";

export interface WebhookInput {
  /** The body exactly as received: the signature covers these bytes. */
  payload: Uint8Array;
  signature: string | null;
}

/** The subscription an event is about; `subscriptionId` null when the event is ours but not a subscription's. */
interface Target {
  customerId: string;
  subscriptionId: string | null;
}

/**
 * Verifies and applies one Stripe webhook. The event id is stored in the same transaction as its
 * effect (at most once), and the effect is always Stripe's current subscription read under the
 * user's lock, never the event's snapshot, so a late or replayed older event cannot roll state back.
 * A failure to read Stripe rolls everything back and answers 503, so Stripe delivers again.
 */
export async function handleWebhook({
  ctx,
  input,
}: PublicVerbArgs<BillingContext, WebhookInput>): Promise<WebhookResult> {
  const stripe = requireStripe(ctx.config);
  const secret = ctx.config.webhookSecret;
  if (!secret) throw unavailable("billing_unconfigured", "webhooks are not configured on this server");
  if (!input.signature) throw badRequest("invalid_signature", "missing Stripe-Signature header");
  let event: Stripe.Event;
  try {
    event = await stripe.webhooks.constructEventAsync(
      input.payload,
      input.signature,
      secret,
      ctx.config.webhookToleranceS,
    );
  } catch (error) {
    ctx.logger.info({ err: (error as Error).message }, "webhook signature rejected");
    throw badRequest("invalid_signature", "webhook signature verification failed");
  }
  const counter = ctx.platform.metrics.counter("billing_webhook_events_total", "Stripe webhook events by outcome", [
    "type",
    "outcome",
  ]);
  const target = targetOf(event);
  if (target === undefined) {
    counter.inc({ type: "unhandled", outcome: "ignored" });
    return { received: true, outcome: "ignored" };
  }
  const result = await ctx.db.transaction(async (tx) => {
    const fresh = await tx
      .insert(processedEvents)
      .values({ eventId: event.id, type: event.type })
      .onConflictDoNothing()
      .returning({ id: processedEvents.eventId });
    if (fresh.length === 0) return { outcome: "duplicate" as const, changed: false };
    if (!target.subscriptionId) return { outcome: "ignored" as const, changed: false };
    const customer = await lockCustomerByStripeId(tx, target.customerId);
    if (!customer) {
      ctx.logger.warn({ event: event.id, customer: target.customerId }, "webhook for a customer we did not create");
      return { outcome: "ignored" as const, changed: false };
    }
    let subscription: Stripe.Subscription;
    try {
      subscription = await stripe.subscriptions.retrieve(target.subscriptionId);
    } catch (error) {
      if (isMissing(error)) return { outcome: "ignored" as const, changed: false };
      throw toServiceError(ctx.logger, "subscriptions.retrieve", error);
    }
    if (idOf(subscription.customer) !== customer.stripeCustomerId) {
      ctx.logger.warn({ event: event.id, subscription: subscription.id }, "subscription belongs to another customer");
      return { outcome: "ignored" as const, changed: false };
    }
    const { changed } = await storeSubscription(ctx, tx, customer, subscription, event.type);
    return { outcome: "processed" as const, changed };
  });
  if (result.changed) ctx.notifyOutbox();
  counter.inc({ type: event.type, outcome: result.outcome });
  return { received: true, outcome: result.outcome };
}

/** Which subscription an event concerns; undefined for event types billing does not handle. */
function targetOf(event: Stripe.Event): Target | undefined {
  switch (event.type) {
    case "checkout.session.completed": {
      const session = event.data.object;
      const subscriptionId = session.mode === "subscription" ? idOf(session.subscription) : "";
      return { customerId: idOf(session.customer), subscriptionId: subscriptionId || null };
    }
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted": {
      const subscription = event.data.object;
      return { customerId: idOf(subscription.customer), subscriptionId: subscription.id };
    }
    case "invoice.paid":
    case "invoice.payment_failed": {
      const invoice = event.data.object;
      const subscriptionId = idOf(invoice.parent?.subscription_details?.subscription);
      return { customerId: idOf(invoice.customer), subscriptionId: subscriptionId || null };
    }
    default:
      return undefined;
  }
}
