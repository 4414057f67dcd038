import { and, eq, isNull, lte, ne, or, type SQL, sql } from "drizzle-orm";
import { ServiceError } from "../shared/errors";
import type { PluginsChanged } from "../shared/plugin-tools";
import type { PublicVerbArgs } from "../shared/verb";
import { announce } from "./announce";
import type { PluginsContext, Tx } from "./context";
import { isErased, isPluginErased, lockUser } from "./erased-users";
import { paymentsDeps } from "./payment-account";
import {
  type AppliedOutcome,
  type ApplyResult,
  cancelPluginSubscription,
  deleteBuyerCustomer,
  handlePaymentWebhook,
  invoicePaidBy,
  type PaymentOutcomeHandler,
  type PaymentWebhookInput,
  type PaymentWebhookResult,
  type PublisherAccountUpdated,
  type PurchasePaid,
  type PurchaseRefunded,
  refundPluginPurchase,
  type SubscriptionEnded,
  type SubscriptionRenewed,
  type SubscriptionResumed,
} from "./payments";
import type { PermissionSet } from "./permissions";
import {
  checkoutGrants,
  developers,
  installs,
  paymentRefunds,
  pluginRows,
  processedPaymentEvents,
  purchases,
  type SubscriptionState,
  subscriptionRenewals,
  subscriptionStates,
  versions,
} from "./tables";
import type { VersionRow } from "./views";

type PurchaseRow = typeof purchases.$inferSelect;
type RefundRow = typeof paymentRefunds.$inferSelect;

/** What an outcome's transaction did, acted on once it commits: chats to tell, purchase events to count. */
interface Effects {
  changes: PluginsChanged[];
  events: Array<"paid" | "refunded" | "ended" | "resumed" | "renewed" | "refused">;
}
type PendingGrants = typeof checkoutGrants.$inferSelect;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Plugin payments' Stripe webhook (`POST /payments/webhook`, public, raw body): verified and turned
 * into an outcome by the payment module, applied here to the service's tables.
 */
export function receivePaymentWebhook({
  ctx,
  input,
}: PublicVerbArgs<PluginsContext, PaymentWebhookInput>): Promise<PaymentWebhookResult> {
  return handlePaymentWebhook(
    { config: ctx.payments, logger: ctx.logger, metrics: ctx.platform.metrics, handler: purchaseStore(ctx) },
    input,
  );
}

/**
 * The plugins service's `PaymentOutcomeHandler`. Each outcome in one transaction whose first write
 * records its event id (ON CONFLICT DO NOTHING): a delivery seen before, or racing its twin, finds
 * the row and changes nothing; a failure records nothing, so Stripe's redelivery applies it. Users
 * whose usable plugins changed are told after the commit (`keys.pluginsChanged`).
 *
 * Locks are taken plugin row (FOR KEY SHARE) → purchase → install, the order installs, uninstalls
 * and approvals take them, so none of them waits on another in a cycle. Outcomes about a
 * subscription first take its `subscription_states` row, refunds and one-off completions their
 * payment's `payment_refunds` row, which nothing else locks; a completion takes the advisory locks
 * (`lockUser`) of its buyer and of its plugin's publisher before all of them, as the erasure of
 * either's data does.
 */
export function purchaseStore(ctx: PluginsContext): PaymentOutcomeHandler {
  return {
    async apply(outcome: AppliedOutcome): Promise<ApplyResult> {
      const effects: Effects = { changes: [], events: [] };
      // Asked of Stripe before the transaction, so no lock is held while Stripe answers.
      const invoiceId = outcome.kind === "purchase_refunded" ? await renewalInvoiceOf(ctx, outcome) : null;
      const result = await ctx.db.transaction(async (tx) => {
        const fresh = await tx
          .insert(processedPaymentEvents)
          .values({ eventId: outcome.eventId, type: outcome.kind })
          .onConflictDoNothing()
          .returning({ id: processedPaymentEvents.eventId });
        if (fresh.length === 0) return "duplicate" as const;
        await applyEffect(ctx, tx, outcome, effects, invoiceId);
        return "processed" as const;
      });
      if (result === "processed") {
        for (const event of effects.events) ctx.purchaseEvents.inc({ event });
        await announce(ctx, effects.changes);
      }
      return result;
    },
  };
}

async function applyEffect(
  ctx: PluginsContext,
  tx: Tx,
  outcome: AppliedOutcome,
  effects: Effects,
  invoiceId: string | null,
) {
  switch (outcome.kind) {
    case "publisher_account_updated":
      return accountUpdated(ctx, tx, outcome);
    case "purchase_paid":
      return purchasePaid(ctx, tx, outcome, effects);
    case "purchase_refunded":
      return purchaseRefunded(tx, outcome, invoiceId, effects);
    case "subscription_ended":
      return subscriptionEnded(tx, outcome, effects);
    case "subscription_resumed":
      return subscriptionResumed(tx, outcome, effects);
    case "subscription_renewed":
      return subscriptionRenewed(ctx, tx, outcome, effects);
  }
}

/**
 * Stores what Stripe says of a publisher's account (payable or not). The account is the one stored
 * for the developer, or adopted when none is (its creation's commit was lost after Stripe made it:
 * the idempotent create would return the same one). Older than what is stored: nothing changes.
 */
async function accountUpdated(ctx: PluginsContext, tx: Tx, outcome: PublisherAccountUpdated) {
  const at = new Date(outcome.occurredAt);
  const { account } = outcome;
  const updated = await tx
    .update(developers)
    .set({
      stripeAccountId: account.accountId,
      chargesEnabled: account.chargesEnabled,
      payoutsEnabled: account.payoutsEnabled,
      detailsSubmitted: account.detailsSubmitted,
      stripeAccountUpdatedAt: at,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        eq(developers.userId, outcome.publisherId),
        or(isNull(developers.stripeAccountId), eq(developers.stripeAccountId, account.accountId)),
        or(isNull(developers.stripeAccountUpdatedAt), lte(developers.stripeAccountUpdatedAt, at)),
      ),
    )
    .returning({ userId: developers.userId });
  if (updated.length === 0) {
    ctx.logger.info(
      { event: outcome.eventId, publisher_id: outcome.publisherId, account: account.accountId },
      "publisher account update not applied (an unknown developer or account, or older than what is stored)",
    );
  }
}

/**
 * A paid Checkout: the purchase is recorded and pays for the user's install of the plugin. No
 * install yet: the version bought is installed with what the user granted at checkout (the pending
 * row of that session; none, nothing granted). An install already there (free before, a
 * subscription that ended, installed meanwhile) keeps its version and grants and is paid for now.
 * A payment that does not match the version's price, or of a plugin gone since, is recorded as
 * processed and honoured in nothing: logged as an error for an operator to refund.
 *
 * A subscription whose end Stripe delivered first (deleted, or lapsed, after this payment) is
 * recorded as that end and pays for nothing: the install is made unpaid, as it would stand had the
 * events come in order. A one-off payment whose full refund Stripe delivered first is recorded as
 * refunded and installs nothing; a partial one is kept on the purchase. A payment of a user whose
 * data is erased is given back (`paidAfterErasure`), and so is one for a plugin whose developer's
 * data is erased (`paidForErasedPlugin`).
 */
async function purchasePaid(ctx: PluginsContext, tx: Tx, outcome: PurchasePaid, effects: Effects) {
  // First: an erasure of the buyer's data, or of the plugin's developer's, in flight commits before
  // this reads, or waits for this purchase (and cancels its subscription). No plugin row: its
  // developer's erasure is committed already (or it never was one), and `erased_plugins` says which.
  const publisherId = await publisherOf(tx, outcome.pluginId);
  for (const userId of [...new Set([outcome.userId, publisherId ?? outcome.userId])].sort()) {
    await lockUser(tx, userId, "shared");
  }
  const erased = await isErased(tx, outcome.userId);
  const ended = outcome.subscriptionId ? await endToldFirst(tx, outcome.subscriptionId, outcome.occurredAt) : undefined;
  const refunded = outcome.paymentIntentId
    ? await refundToldFirst(tx, outcome.paymentIntentId, outcome.occurredAt)
    : undefined;
  if (erased) return paidAfterErasure(ctx, tx, outcome, { ended, refunded }, effects);
  if (UUID.test(outcome.pluginId) && (await isPluginErased(tx, outcome.pluginId))) {
    return paidForErasedPlugin(ctx, tx, outcome, { ended, refunded }, effects);
  }
  const version = await versionPaidFor(tx, outcome);
  if (typeof version === "string") {
    ctx.logger.error(
      { event: outcome.eventId, user_id: outcome.userId, plugin_id: outcome.pluginId, why: version },
      "a plugin payment was not honoured; refund it",
    );
    effects.events.push("refused");
    return;
  }
  const fullyRefunded = refunded?.fullyRefunded === true;
  const [purchase] = await tx
    .insert(purchases)
    .values({
      ...purchaseValues(outcome, version),
      userId: outcome.userId,
      customerId: outcome.customerId,
      lastOccurredAt: new Date(outcome.occurredAt),
      ...(ended && { status: "ended" as const, endReason: ended.state, lastOccurredAt: ended.occurredAt }),
      ...(refunded && { amountRefunded: refunded.amountRefunded, lastOccurredAt: latest(outcome, refunded) }),
      ...(fullyRefunded && { status: "refunded" as const }),
    })
    .onConflictDoNothing()
    .returning();
  // This session's payment is recorded already (its `async_payment_succeeded` after a `completed`).
  if (!purchase) return;
  effects.events.push("paid");
  if (ended) {
    ctx.logger.info(
      { event: outcome.eventId, subscription: outcome.subscriptionId, state: ended.state },
      "a plugin subscription's end arrived before its payment: the purchase is recorded as ended",
    );
    effects.events.push("ended");
  }
  const [pending] = await tx
    .delete(checkoutGrants)
    .where(
      and(
        eq(checkoutGrants.sessionId, outcome.checkoutSessionId),
        eq(checkoutGrants.userId, outcome.userId),
        eq(checkoutGrants.pluginId, version.pluginId),
      ),
    )
    .returning();
  if (fullyRefunded) {
    // As in order (paid, installed, refunded, uninstalled): nothing is installed, nobody is told.
    ctx.logger.info(
      { event: outcome.eventId, payment_intent: outcome.paymentIntentId },
      "a plugin payment's refund arrived before its completion: the purchase is recorded as refunded",
    );
    effects.events.push("refunded");
    return;
  }
  await entitle(tx, purchase, version, pending, effects.changes);
}

/** The developer who publishes the plugin, read without a lock; undefined for a plugin there is no row of. */
async function publisherOf(tx: Tx, pluginId: string): Promise<string | undefined> {
  if (!UUID.test(pluginId)) return undefined;
  const [plugin] = await tx
    .select({ developerId: pluginRows.developerId })
    .from(pluginRows)
    .where(eq(pluginRows.id, pluginId));
  return plugin?.developerId;
}

/**
 * The version a payment is for, checked against its price (model, amount, currency), with its plugin
 * row held shared; or why it cannot be honoured.
 */
async function versionPaidFor(tx: Tx, outcome: PurchasePaid): Promise<VersionRow | string> {
  if (!UUID.test(outcome.pluginId)) return "not a plugin id";
  const [plugin] = await tx
    .select({ id: pluginRows.id })
    .from(pluginRows)
    .where(eq(pluginRows.id, outcome.pluginId))
    .for("key share");
  if (!plugin) return "the plugin no longer exists";
  const [version] = await tx
    .select()
    .from(versions)
    .where(and(eq(versions.pluginId, plugin.id), eq(versions.version, outcome.version)));
  if (version?.status !== "published") return "the version bought is not published";
  const { pricing } = version.manifest;
  if (
    pricing.model !== outcome.model ||
    pricing.amount !== outcome.amount ||
    pricing.currency !== outcome.currency.toLowerCase()
  ) {
    return `paid ${outcome.amount} ${outcome.currency} (${outcome.model}) for a price of ${priceOf(version)}`;
  }
  return version;
}

/** A purchase row's terms from its payment: whose it is is up to the caller. */
const purchaseValues = (outcome: PurchasePaid, version: VersionRow) => ({
  id: crypto.randomUUID(),
  pluginId: version.pluginId,
  versionId: version.id,
  version: version.version,
  model: outcome.model,
  amount: outcome.amount,
  // The version's price, which the payment matched.
  currency: outcome.currency.toLowerCase(),
  platformFee: outcome.platformFee,
  checkoutSessionId: outcome.checkoutSessionId,
  paymentIntentId: outcome.paymentIntentId,
  subscriptionId: outcome.subscriptionId,
  firstInvoiceId: outcome.firstInvoiceId,
});

/** The later of a payment's time and that of what Stripe told of it first. */
const latest = (outcome: PurchasePaid, told: { occurredAt: Date }) =>
  new Date(Math.max(outcome.occurredAt, told.occurredAt.getTime()));

/**
 * A payment Stripe completed for a user whose data the service has erased (the account was deleted
 * between checkout and payment, or Stripe delivered the completion late): nothing is recorded for
 * them. Stripe gives the money back first: a one-off payment refunded in full, a subscription
 * cancelled at once, each under a key that makes a redelivery the same request (a subscription or
 * payment already ended or refunded counts as done); the customer Checkout made for them, if any, is
 * deleted, as the erasure deletes theirs (one Stripe no longer has counts as deleted). Stripe
 * unreachable throws: nothing is recorded and Stripe delivers the event again. The sale stays in the
 * publisher's figures as an erased buyer's purchases do, with no user and no customer, refunded or
 * ended (without STRIPE_SECRET_KEY a one-off payment cannot be refunded: it stays active, and an
 * error asks an operator to).
 */
async function paidAfterErasure(
  ctx: PluginsContext,
  tx: Tx,
  outcome: PurchasePaid,
  told: { ended: { state: SubscriptionState } | undefined; refunded: RefundRow | undefined },
  effects: Effects,
) {
  const [recorded] = await tx
    .select({ id: purchases.id })
    .from(purchases)
    .where(eq(purchases.checkoutSessionId, outcome.checkoutSessionId));
  if (recorded) return;
  const givenBack = await givePaymentBack(ctx, outcome, told, "buyer's");
  await tx.delete(checkoutGrants).where(eq(checkoutGrants.sessionId, outcome.checkoutSessionId));
  if (outcome.subscriptionId) {
    await recordSubscriptionState(tx, outcome.subscriptionId, "canceled", outcome.occurredAt);
  }
  const version = await versionPaidFor(tx, outcome);
  if (typeof version === "string") return;
  const [purchase] = await tx
    .insert(purchases)
    .values({
      ...purchaseValues(outcome, version),
      userId: null,
      customerId: null,
      lastOccurredAt: new Date(outcome.occurredAt),
      ...(outcome.subscriptionId && { status: "ended" as const, endReason: "canceled" as const }),
      ...(!outcome.subscriptionId && givenBack && { status: "refunded" as const, amountRefunded: outcome.amount }),
    })
    .onConflictDoNothing()
    .returning({ id: purchases.id, status: purchases.status });
  if (!purchase) return;
  effects.events.push("paid");
  if (purchase.status === "ended") effects.events.push("ended");
  if (purchase.status === "refunded") effects.events.push("refunded");
}

/**
 * A payment Stripe completed for a plugin whose developer's data the service has erased, the plugin
 * with it (the erasure committed before this, or while this waited for it): nothing was sold, so
 * nothing is recorded or installed and Stripe gives the money back as `paidAfterErasure` has it
 * give it back (a one-off payment refunded in full, a subscription cancelled at once, a redelivery
 * the same request), and the customer Checkout made for this purchase only is deleted: no purchase
 * keeps its id for the buyer's own erasure to delete it. Stripe unreachable throws: nothing is
 * recorded and Stripe delivers the event again. The erasure cancels the subscriptions of every
 * completion committed before it; this gives back those that come after.
 */
async function paidForErasedPlugin(
  ctx: PluginsContext,
  tx: Tx,
  outcome: PurchasePaid,
  told: { ended: { state: SubscriptionState } | undefined; refunded: RefundRow | undefined },
  effects: Effects,
) {
  const givenBack = await givePaymentBack(ctx, outcome, told, "publisher's");
  if (outcome.subscriptionId) {
    await recordSubscriptionState(tx, outcome.subscriptionId, "canceled", outcome.occurredAt);
  }
  effects.events.push(givenBack ? (outcome.subscriptionId ? "ended" : "refunded") : "refused");
}

/**
 * A payment nothing may be sold for, given back (`giveBack`), with the Stripe customer Checkout
 * made for it deleted, and a warning naming whose account was deleted. False when Stripe cannot
 * give it back (no STRIPE_SECRET_KEY, or a payment that names no payment intent).
 */
async function givePaymentBack(
  ctx: PluginsContext,
  outcome: PurchasePaid,
  told: { ended: { state: SubscriptionState } | undefined; refunded: RefundRow | undefined },
  whose: "buyer's" | "publisher's",
): Promise<boolean> {
  const givenBack = await giveBack(ctx, outcome, told);
  if (outcome.customerId && ctx.payments.stripe) await deleteBuyerCustomer(paymentsDeps(ctx), outcome.customerId);
  if (!givenBack) return false;
  ctx.logger.warn(
    {
      event: outcome.eventId,
      user_id: outcome.userId,
      plugin_id: outcome.pluginId,
      ...(outcome.subscriptionId
        ? { subscription: outcome.subscriptionId }
        : { payment_intent: outcome.paymentIntentId }),
    },
    outcome.subscriptionId
      ? `a plugin subscription paid after its ${whose} account was deleted: cancelled`
      : `a plugin payment made after its ${whose} account was deleted: refunded`,
  );
  return true;
}

/**
 * Stripe gives a payment back: the subscription cancelled now, or the one-off payment refunded in
 * full. False when it cannot be (no STRIPE_SECRET_KEY, or a payment that names no payment intent).
 */
async function giveBack(
  ctx: PluginsContext,
  outcome: PurchasePaid,
  told: { ended: { state: SubscriptionState } | undefined; refunded: RefundRow | undefined },
): Promise<boolean> {
  const payment = outcome.subscriptionId ?? outcome.paymentIntentId;
  if (!ctx.payments.stripe || !payment) {
    ctx.logger.error(
      { event: outcome.eventId, subscription: outcome.subscriptionId, payment_intent: outcome.paymentIntentId },
      "a plugin payment of a deleted account cannot be given back here (STRIPE_SECRET_KEY unset?); refund it",
    );
    return false;
  }
  const deps = paymentsDeps(ctx);
  if (outcome.subscriptionId) {
    if (told.ended?.state !== "canceled") await cancelPluginSubscription(deps, outcome.subscriptionId, "now");
    return true;
  }
  if (told.refunded?.fullyRefunded) return true;
  try {
    await refundPluginPurchase(deps, payment);
  } catch (error) {
    if (!(error instanceof ServiceError && error.code === "already_refunded")) throw error;
  }
  return true;
}

/**
 * The end of a subscription Stripe told before this payment's completion (canceled: final; lapsed
 * at or after the payment), or undefined. Takes the subscription's state row (made if none), so an
 * end delivered at the same moment commits before this reads it, or waits for this purchase and
 * then finds it.
 */
async function endToldFirst(tx: Tx, subscriptionId: string, occurredAt: number) {
  await tx
    .insert(subscriptionStates)
    .values({ subscriptionId, state: "active", occurredAt: new Date(occurredAt) })
    .onConflictDoNothing();
  const [told] = await tx
    .select()
    .from(subscriptionStates)
    .where(eq(subscriptionStates.subscriptionId, subscriptionId))
    .for("update");
  if (!told || told.state === "active") return undefined;
  if (told.state === "lapsed" && told.occurredAt.getTime() < occurredAt) return undefined;
  return { state: told.state, occurredAt: told.occurredAt };
}

/**
 * What Stripe told of refunds of this payment before its completion, or undefined when nothing was
 * refunded. Takes the payment's refund row (made, at 0, if none), so a refund delivered at the same
 * moment commits before this reads it, or waits for this purchase and then finds it.
 */
async function refundToldFirst(tx: Tx, paymentIntentId: string, occurredAt: number): Promise<RefundRow | undefined> {
  await tx
    .insert(paymentRefunds)
    .values({ paymentIntentId, occurredAt: new Date(occurredAt) })
    .onConflictDoNothing();
  const [told] = await tx
    .select()
    .from(paymentRefunds)
    .where(eq(paymentRefunds.paymentIntentId, paymentIntentId))
    .for("update");
  return told && told.amountRefunded > 0 ? told : undefined;
}

/**
 * Records what a refund tells of its payment (Stripe's running total, whether it is all of it, the
 * renewal invoice it paid when known), unless more was told already: a redelivered or older event
 * changes nothing. The row stays locked until the transaction ends.
 */
async function recordRefund(tx: Tx, outcome: PurchaseRefunded, invoiceId: string | null) {
  await tx
    .insert(paymentRefunds)
    .values({
      paymentIntentId: outcome.paymentIntentId,
      amountRefunded: outcome.amountRefunded,
      fullyRefunded: outcome.fullyRefunded,
      invoiceId,
      occurredAt: new Date(outcome.occurredAt),
    })
    .onConflictDoUpdate({
      target: paymentRefunds.paymentIntentId,
      set: {
        amountRefunded: sql`greatest(${paymentRefunds.amountRefunded}, excluded.amount_refunded)`,
        fullyRefunded: sql`${paymentRefunds.fullyRefunded} or excluded.fully_refunded`,
        invoiceId: sql`coalesce(${paymentRefunds.invoiceId}, excluded.invoice_id)`,
        occurredAt: sql`greatest(${paymentRefunds.occurredAt}, excluded.occurred_at)`,
        updatedAt: sql`now()`,
      },
    });
}

/**
 * The subscription invoice a refunded payment paid (a renewal's, or the first one, which Checkout
 * made), so the publisher's sales count the refund against that renewal or that purchase. Asked of
 * Stripe only for a refund that is new, names no purchase (a one-off payment's charge carries the
 * purchase's metadata, a subscription invoice's none) and whose invoice is not known yet: refunds are
 * rare, renewals are not, so the renewal's event is never the one that asks.
 */
async function renewalInvoiceOf(ctx: PluginsContext, outcome: PurchaseRefunded): Promise<string | null> {
  if (outcome.purchase) return null;
  const [seen] = await ctx.db
    .select({ id: processedPaymentEvents.eventId })
    .from(processedPaymentEvents)
    .where(eq(processedPaymentEvents.eventId, outcome.eventId));
  if (seen) return null;
  const [known] = await ctx.db
    .select({ invoiceId: paymentRefunds.invoiceId })
    .from(paymentRefunds)
    .where(eq(paymentRefunds.paymentIntentId, outcome.paymentIntentId));
  if (known?.invoiceId) return known.invoiceId;
  const [bought] = await ctx.db
    .select({ id: purchases.id })
    .from(purchases)
    .where(eq(purchases.paymentIntentId, outcome.paymentIntentId));
  if (bought) return null;
  if (!ctx.payments.stripe) {
    ctx.logger.warn(
      { event: outcome.eventId, payment_intent: outcome.paymentIntentId },
      "STRIPE_SECRET_KEY unset: a refund's invoice cannot be looked up, a renewal's refund is not counted",
    );
    return null;
  }
  return invoicePaidBy(paymentsDeps(ctx), outcome.paymentIntentId);
}

/**
 * Records what an outcome tells of a subscription, unless a newer state is stored or the stored one
 * is `canceled` (final). The row stays locked either way until the transaction ends.
 */
async function recordSubscriptionState(tx: Tx, subscriptionId: string, state: SubscriptionState, occurredAt: number) {
  const at = new Date(occurredAt);
  await tx
    .insert(subscriptionStates)
    .values({ subscriptionId, state, occurredAt: at })
    .onConflictDoUpdate({
      target: subscriptionStates.subscriptionId,
      set: { state, occurredAt: at, updatedAt: sql`now()` },
      setWhere: and(ne(subscriptionStates.state, "canceled"), lte(subscriptionStates.occurredAt, at)),
    });
}

const priceOf = (version: VersionRow) => {
  const { pricing } = version.manifest;
  return pricing.model === "free" ? "free" : `${pricing.amount} ${pricing.currency} (${pricing.model})`;
};

/** What was granted at checkout, kept to what the version asks for. */
function grantsFor(pending: PendingGrants | undefined, asked: PermissionSet): PermissionSet {
  if (!pending) return { deviceTools: [], origins: [], data: [] };
  return {
    deviceTools: pending.grantedDeviceTools.filter((each) => asked.deviceTools.includes(each)),
    origins: pending.grantedOrigins.filter((each) => asked.origins.includes(each)),
    data: pending.grantedData.filter((each) => asked.data.includes(each)),
  };
}

/**
 * The install a purchase pays for: made with the checkout's grants, or an install already there
 * attached to it. A purchase recorded as ended (its subscription's end came first) pays for nothing:
 * a new install is made unpaid and one already there is left as it is.
 */
async function entitle(
  tx: Tx,
  purchase: PurchaseRow,
  version: VersionRow,
  pending: PendingGrants | undefined,
  changes: PluginsChanged[],
) {
  const userId = purchase.userId as string;
  const pays = purchase.status === "active";
  const granted = grantsFor(pending, version.manifest.permissions);
  const [installed] = await tx
    .insert(installs)
    .values({
      id: crypto.randomUUID(),
      userId,
      pluginId: purchase.pluginId,
      versionId: version.id,
      grantedDeviceTools: granted.deviceTools,
      grantedOrigins: granted.origins,
      grantedData: granted.data,
      // No token here: the tier the user had at checkout (no pending row: the first the version lists).
      tier: pending?.tier ?? version.manifest.tiers[0] ?? "free",
      entitlementId: pays ? purchase.id : null,
    })
    .onConflictDoNothing()
    .returning({ id: installs.id });
  if (installed) {
    await tx
      .update(pluginRows)
      .set({ installCount: sql`${pluginRows.installCount} + 1` })
      .where(eq(pluginRows.id, purchase.pluginId));
    // Unpaid, the agent is offered nothing new: no chat to tell.
    if (pays) changes.push({ userId, pluginId: purchase.pluginId, reason: "installed" });
    return;
  }
  if (!pays) return;
  const attached = await tx
    .update(installs)
    .set({ entitlementId: purchase.id, updatedAt: sql`now()` })
    .where(
      and(
        eq(installs.userId, userId),
        eq(installs.pluginId, purchase.pluginId),
        or(isNull(installs.entitlementId), sql`not exists (${activePurchase(sql`${installs.entitlementId}`)})`),
      ),
    )
    .returning({ id: installs.id });
  if (attached.length > 0) changes.push({ userId, pluginId: purchase.pluginId, reason: "installed" });
}

/** `select 1` of an active purchase with the given id. */
const activePurchase = (id: SQL) =>
  sql`select 1 from ${purchases} where ${purchases.id} = ${id} and ${purchases.status} = 'active'`;

/**
 * The purchase `where` names, locked for the rest of the transaction after its plugin row (shared),
 * the order installs take them in.
 */
async function lockPurchase(tx: Tx, where: SQL): Promise<PurchaseRow | undefined> {
  const [found] = await tx.select({ pluginId: purchases.pluginId }).from(purchases).where(where);
  if (!found) return undefined;
  await tx.select({ id: pluginRows.id }).from(pluginRows).where(eq(pluginRows.id, found.pluginId)).for("key share");
  const [row] = await tx.select().from(purchases).where(where).for("update");
  return row;
}

/** An outcome older than the newest applied to the purchase: Stripe delivered it late. */
const isStale = (purchase: PurchaseRow, occurredAt: number) => occurredAt < purchase.lastOccurredAt.getTime();

/**
 * The purchase no longer pays for the install. Another active purchase of the plugin by the same
 * user (bought twice) takes over; else a refund uninstalls (`uninstall`), a subscription's end
 * leaves the install in place, unpaid and so not offered to the agent, until it resumes or the
 * plugin is bought again (`disable`).
 */
async function withdraw(tx: Tx, purchase: PurchaseRow, how: "uninstall" | "disable", changes: PluginsChanged[]) {
  const [install] = await tx.select().from(installs).where(eq(installs.entitlementId, purchase.id)).for("update");
  if (!install) return;
  const [other] = await tx
    .select({ id: purchases.id })
    .from(purchases)
    .where(
      and(
        eq(purchases.userId, install.userId),
        eq(purchases.pluginId, install.pluginId),
        eq(purchases.status, "active"),
        ne(purchases.id, purchase.id),
      ),
    )
    .limit(1);
  if (other) {
    await tx.update(installs).set({ entitlementId: other.id }).where(eq(installs.id, install.id));
    return;
  }
  if (how === "uninstall") {
    await tx.delete(installs).where(eq(installs.id, install.id));
    await tx
      .update(pluginRows)
      .set({ installCount: sql`${pluginRows.installCount} - 1` })
      .where(eq(pluginRows.id, install.pluginId));
    changes.push({ userId: install.userId, pluginId: install.pluginId, reason: "uninstalled" });
  } else {
    await tx.update(installs).set({ entitlementId: null, updatedAt: sql`now()` }).where(eq(installs.id, install.id));
    changes.push({ userId: install.userId, pluginId: install.pluginId, reason: "removed" });
  }
}

/**
 * Money went back to the buyer of a one-off purchase, or of a subscription's renewal. The running
 * total is kept by payment (the publisher's sales count a renewal's against its invoice) and on a
 * one-off purchase; a full refund ends the purchase and uninstalls the plugin it paid for.
 */
async function purchaseRefunded(tx: Tx, outcome: PurchaseRefunded, invoiceId: string | null, effects: Effects) {
  // Kept even with no purchase yet: a completion delivered later finds it (`refundToldFirst`).
  await recordRefund(tx, outcome, invoiceId);
  const purchase = await lockPurchase(tx, eq(purchases.paymentIntentId, outcome.paymentIntentId));
  if (!purchase || isStale(purchase, outcome.occurredAt)) return;
  await tx
    .update(purchases)
    .set({
      amountRefunded: sql`greatest(${purchases.amountRefunded}, ${outcome.amountRefunded})`,
      ...(outcome.fullyRefunded && { status: "refunded" as const }),
      lastOccurredAt: new Date(outcome.occurredAt),
      updatedAt: sql`now()`,
    })
    .where(eq(purchases.id, purchase.id));
  if (!outcome.fullyRefunded || purchase.status !== "active") return;
  effects.events.push("refunded");
  await withdraw(tx, purchase, "uninstall", effects.changes);
}

/**
 * A monthly plugin's subscription stopped paying: the purchase ends (`canceled` for good, or
 * `lapsed`, which a payment can resume; canceled stays canceled) and no longer pays for the install.
 */
async function subscriptionEnded(tx: Tx, outcome: SubscriptionEnded, effects: Effects) {
  // Kept even with no purchase yet: a completion delivered later finds it (`endToldFirst`).
  await recordSubscriptionState(tx, outcome.subscriptionId, outcome.reason, outcome.occurredAt);
  const purchase = await lockPurchase(tx, eq(purchases.subscriptionId, outcome.subscriptionId));
  if (!purchase || isStale(purchase, outcome.occurredAt)) return;
  const endReason = outcome.reason === "canceled" || purchase.endReason === "canceled" ? "canceled" : "lapsed";
  await tx
    .update(purchases)
    .set({
      ...(purchase.status !== "refunded" && { status: "ended" as const, endReason }),
      lastOccurredAt: new Date(outcome.occurredAt),
      updatedAt: sql`now()`,
    })
    .where(eq(purchases.id, purchase.id));
  if (purchase.status !== "active") return;
  effects.events.push("ended");
  await withdraw(tx, purchase, "disable", effects.changes);
}

/** A lapsed subscription paid again: the purchase is active again and pays for the user's install, if any. */
async function subscriptionResumed(tx: Tx, outcome: SubscriptionResumed, effects: Effects) {
  await recordSubscriptionState(tx, outcome.subscriptionId, "active", outcome.occurredAt);
  const purchase = await lockPurchase(tx, eq(purchases.subscriptionId, outcome.subscriptionId));
  if (!purchase || isStale(purchase, outcome.occurredAt)) return;
  const resumes = purchase.status === "ended" && purchase.endReason === "lapsed";
  await tx
    .update(purchases)
    .set({
      ...(resumes && { status: "active" as const, endReason: null }),
      lastOccurredAt: new Date(outcome.occurredAt),
      updatedAt: sql`now()`,
    })
    .where(eq(purchases.id, purchase.id));
  if (!resumes || purchase.userId === null) return;
  effects.events.push("resumed");
  const attached = await tx
    .update(installs)
    .set({ entitlementId: purchase.id, updatedAt: sql`now()` })
    .where(
      and(
        eq(installs.userId, purchase.userId),
        eq(installs.pluginId, purchase.pluginId),
        isNull(installs.entitlementId),
      ),
    )
    .returning({ id: installs.id });
  if (attached.length > 0) {
    effects.changes.push({ userId: purchase.userId, pluginId: purchase.pluginId, reason: "installed" });
  }
}

/**
 * A monthly plugin's renewal paid: recorded once per invoice (its two events, or a redelivery, find
 * it recorded) against the subscription's purchase, so the publisher's sales count it with its fee.
 * A subscription no purchase records (its payment was refused, its plugin erased) counts nothing.
 */
async function subscriptionRenewed(ctx: PluginsContext, tx: Tx, outcome: SubscriptionRenewed, effects: Effects) {
  const [purchase] = await tx
    .select({ id: purchases.id })
    .from(purchases)
    .where(eq(purchases.subscriptionId, outcome.subscriptionId));
  if (!purchase) {
    ctx.logger.warn(
      { event: outcome.eventId, subscription: outcome.subscriptionId, invoice: outcome.invoiceId },
      "a plugin subscription renewal of no recorded purchase: not counted",
    );
    return;
  }
  const [renewal] = await tx
    .insert(subscriptionRenewals)
    .values({
      invoiceId: outcome.invoiceId,
      purchaseId: purchase.id,
      amount: outcome.amount,
      currency: outcome.currency.toLowerCase(),
      platformFee: outcome.platformFee,
      paidAt: new Date(outcome.occurredAt),
    })
    .onConflictDoNothing()
    .returning({ invoiceId: subscriptionRenewals.invoiceId });
  if (renewal) effects.events.push("renewed");
}
