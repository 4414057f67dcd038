import { and, eq, isNull, lte, ne, or, type SQL, sql } from "drizzle-orm";
import type { PluginsChanged } from "../shared/plugin-tools";
import type { PublicVerbArgs } from "../shared/verb";
import { announce } from "./announce";
import type { PluginsContext, Tx } from "./context";
import {
  type AppliedOutcome,
  type ApplyResult,
  handlePaymentWebhook,
  type PaymentOutcomeHandler,
  type PaymentWebhookInput,
  type PaymentWebhookResult,
  type PublisherAccountUpdated,
  type PurchasePaid,
  type PurchaseRefunded,
  type SubscriptionEnded,
  type SubscriptionRenewed,
  type SubscriptionResumed,
} from "./payments";
import type { PermissionSet } from "./permissions";
import {
  checkoutGrants,
  developers,
  installs,
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
 * subscription first take its `subscription_states` row, which nothing else locks.
 */
export function purchaseStore(ctx: PluginsContext): PaymentOutcomeHandler {
  return {
    async apply(outcome: AppliedOutcome): Promise<ApplyResult> {
      const effects: Effects = { changes: [], events: [] };
      const result = await ctx.db.transaction(async (tx) => {
        const fresh = await tx
          .insert(processedPaymentEvents)
          .values({ eventId: outcome.eventId, type: outcome.kind })
          .onConflictDoNothing()
          .returning({ id: processedPaymentEvents.eventId });
        if (fresh.length === 0) return "duplicate" as const;
        await applyEffect(ctx, tx, outcome, effects);
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

async function applyEffect(ctx: PluginsContext, tx: Tx, outcome: AppliedOutcome, effects: Effects) {
  switch (outcome.kind) {
    case "publisher_account_updated":
      return accountUpdated(ctx, tx, outcome);
    case "purchase_paid":
      return purchasePaid(ctx, tx, outcome, effects);
    case "purchase_refunded":
      return purchaseRefunded(tx, outcome, effects);
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
 * events come in order.
 */
async function purchasePaid(ctx: PluginsContext, tx: Tx, outcome: PurchasePaid, effects: Effects) {
  const ended = outcome.subscriptionId ? await endToldFirst(tx, outcome.subscriptionId, outcome.occurredAt) : undefined;
  const refuse = (why: string) => {
    ctx.logger.error(
      { event: outcome.eventId, user_id: outcome.userId, plugin_id: outcome.pluginId, why },
      "a plugin payment was not honoured; refund it",
    );
    effects.events.push("refused");
  };
  if (!UUID.test(outcome.pluginId)) return refuse("not a plugin id");
  const [plugin] = await tx
    .select({ id: pluginRows.id })
    .from(pluginRows)
    .where(eq(pluginRows.id, outcome.pluginId))
    .for("key share");
  if (!plugin) return refuse("the plugin no longer exists");
  const [version] = await tx
    .select()
    .from(versions)
    .where(and(eq(versions.pluginId, plugin.id), eq(versions.version, outcome.version)));
  if (version?.status !== "published") return refuse("the version bought is not published");
  const { pricing } = version.manifest;
  if (
    pricing.model !== outcome.model ||
    pricing.amount !== outcome.amount ||
    pricing.currency !== outcome.currency.toLowerCase()
  ) {
    return refuse(`paid ${outcome.amount} ${outcome.currency} (${outcome.model}) for a price of ${priceOf(version)}`);
  }
  const [purchase] = await tx
    .insert(purchases)
    .values({
      id: crypto.randomUUID(),
      userId: outcome.userId,
      pluginId: plugin.id,
      versionId: version.id,
      version: version.version,
      model: outcome.model,
      amount: outcome.amount,
      currency: pricing.currency,
      platformFee: outcome.platformFee,
      checkoutSessionId: outcome.checkoutSessionId,
      paymentIntentId: outcome.paymentIntentId,
      subscriptionId: outcome.subscriptionId,
      customerId: outcome.customerId,
      lastOccurredAt: new Date(outcome.occurredAt),
      ...(ended && { status: "ended" as const, endReason: ended.state, lastOccurredAt: ended.occurredAt }),
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
        eq(checkoutGrants.pluginId, plugin.id),
      ),
    )
    .returning();
  await entitle(tx, purchase, version, pending, effects.changes);
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
 * Money went back to the buyer of a one-off purchase. The running total is kept (the publisher's
 * sales show it); a full refund ends the purchase and uninstalls the plugin it paid for.
 */
async function purchaseRefunded(tx: Tx, outcome: PurchaseRefunded, effects: Effects) {
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
