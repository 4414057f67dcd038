import { eq, inArray, sql } from "drizzle-orm";
import { revokeSessions } from "../auth/sessions";
import { users } from "../auth/tables";
import { PAID_TIERS, type PaidTier } from "../billing/config";
import { isEntitled } from "../billing/sync";
import { customers, subscriptions } from "../billing/tables";
import type { Database } from "../shared/db";
import type { Env } from "../shared/env";
import { type Tier, tierRank } from "../shared/tiers";
import { SubscriptionLine } from "./formats";
import type { Numbered } from "./jsonl";
import { knownUsers, missingUser } from "./known-users";
import type { Outcome } from "./report";
import { firstSeen, LineRefused, outcomeOf, type Stage } from "./stage";

type SubscriptionRow = typeof subscriptions.$inferSelect;
type Wanted = Omit<SubscriptionRow, "syncedAt">;

/** The Stripe prices this deployment sells (STRIPE_PRICE_*), which decide a subscription's tier first. */
export type PriceTiers = Map<string, PaidTier>;

export function priceTiers(
  env: Pick<Env, "STRIPE_PRICE_PRO" | "STRIPE_PRICE_POWER" | "STRIPE_PRICE_TEAM">,
): PriceTiers {
  const prices: Record<PaidTier, string | undefined> = {
    pro: env.STRIPE_PRICE_PRO,
    power: env.STRIPE_PRICE_POWER,
    team: env.STRIPE_PRICE_TEAM,
  };
  return new Map(PAID_TIERS.flatMap((tier) => (prices[tier] ? [[prices[tier], tier] as const] : [])));
}

/**
 * subscriptions.jsonl → billing.subscriptions (keyed by Stripe's id), then each touched user's
 * tier as billing computes it (the highest tier among entitled subscriptions) written to both
 * billing.customers and auth.users in the same transaction, with one `tier_changed_at`, so auth
 * and billing agree and a later webhook's change is newer than the import's. The customer row
 * carries the Stripe customer id, so Stripe's webhooks find the user.
 */
export function subscriptionsStage(prices: PriceTiers): Stage<typeof SubscriptionLine> {
  const sameId = firstSeen("id");
  return {
    entity: "subscriptions",
    schema: SubscriptionLine,
    batchSize: 500,
    admit: (subscription, line) => sameId(subscription.id, line),
    apply: (tx, lines) => applySubscriptions(tx, prices, lines),
  };
}

async function applySubscriptions(
  tx: Database,
  prices: PriceTiers,
  lines: Array<Numbered<SubscriptionLine>>,
): Promise<Outcome[]> {
  const known = await knownUsers(
    tx,
    lines.map((line) => line.value.user_id),
  );
  const existing = new Map(
    (
      await tx
        .select()
        .from(subscriptions)
        .where(
          inArray(
            subscriptions.id,
            lines.map((line) => line.value.id),
          ),
        )
    ).map((row) => [row.id, row] as const),
  );
  const customerOwners = new Map(
    (
      await tx
        .select({ userId: customers.userId, stripeCustomerId: customers.stripeCustomerId })
        .from(customers)
        .where(
          inArray(
            customers.stripeCustomerId,
            lines.map((line) => line.value.customer_id),
          ),
        )
    ).map((row) => [row.stripeCustomerId, row.userId] as const),
  );
  const outcomes: Outcome[] = [];
  const writes: Wanted[] = [];
  /** Users whose tier is computed again, with the Stripe customer id their row gets if it has none. */
  const touched = new Map<string, string>();
  for (const { value } of lines) {
    const userId = known.idOf(value.user_id);
    const owner = customerOwners.get(value.customer_id);
    if (!userId) {
      outcomes.push(missingUser(value.user_id));
      continue;
    }
    if (owner !== undefined && owner !== userId) {
      outcomes.push({ skipped: `Stripe customer ${value.customer_id} belongs to another user` });
      continue;
    }
    // The first line of the batch naming a customer claims it, as the first row in the table would.
    customerOwners.set(value.customer_id, userId);
    const wanted = rowOf(value, userId, prices);
    const outcome = outcomeOf(existing.get(value.id), (row) => differs(row, wanted));
    if (outcome !== "unchanged") {
      writes.push(wanted);
      if (!touched.get(userId)) touched.set(userId, value.customer_id);
      // The user the subscription belonged to before has one fewer; their tier is computed again too.
      const previous = existing.get(value.id)?.userId;
      if (previous && previous !== userId && !touched.has(previous)) touched.set(previous, "");
    }
    outcomes.push(outcome);
  }
  await upsertSubscriptions(tx, writes);
  await settleTiers(tx, touched);
  return outcomes;
}

/** Every new or changed subscription of the batch in one statement. */
async function upsertSubscriptions(tx: Database, rows: Wanted[]): Promise<void> {
  if (rows.length === 0) return;
  const excluded = (column: string) => sql.raw(`excluded.${column}`);
  await tx
    .insert(subscriptions)
    .values(rows)
    .onConflictDoUpdate({
      target: subscriptions.id,
      set: {
        userId: excluded("user_id"),
        stripeCustomerId: excluded("stripe_customer_id"),
        status: excluded("status"),
        itemId: excluded("item_id"),
        priceId: excluded("price_id"),
        tier: excluded("tier"),
        currentPeriodEnd: excluded("current_period_end"),
        cancelAtPeriodEnd: excluded("cancel_at_period_end"),
        endedAt: excluded("ended_at"),
        stripeCreatedAt: excluded("stripe_created_at"),
        syncedAt: sql`now()`,
      },
    });
}

function rowOf(line: SubscriptionLine, userId: string, prices: PriceTiers): Wanted {
  return {
    id: line.id,
    userId,
    stripeCustomerId: line.customer_id,
    status: line.status,
    itemId: line.item_id ?? null,
    priceId: line.price_id ?? null,
    tier: (line.price_id ? prices.get(line.price_id) : undefined) ?? line.tier ?? null,
    currentPeriodEnd: line.current_period_end ?? null,
    cancelAtPeriodEnd: line.cancel_at_period_end,
    endedAt: line.ended_at ?? null,
    stripeCreatedAt: line.created_at,
  };
}

const time = (date: Date | null) => date?.getTime() ?? null;

function differs(row: SubscriptionRow, wanted: Wanted): boolean {
  return (
    row.userId !== wanted.userId ||
    row.stripeCustomerId !== wanted.stripeCustomerId ||
    row.status !== wanted.status ||
    row.itemId !== wanted.itemId ||
    row.priceId !== wanted.priceId ||
    row.tier !== wanted.tier ||
    time(row.currentPeriodEnd) !== time(wanted.currentPeriodEnd) ||
    row.cancelAtPeriodEnd !== wanted.cancelAtPeriodEnd ||
    time(row.endedAt) !== time(wanted.endedAt) ||
    time(row.stripeCreatedAt) !== time(wanted.stripeCreatedAt)
  );
}

/**
 * Makes billing's customer rows and auth's users agree on the tier the users' subscriptions grant.
 * A change is stamped later than any change either side applied before, so neither a stale event
 * in flight nor the next webhook is taken for older than it is. A lower tier ends the user's
 * sessions, as auth does when billing announces one.
 */
async function settleTiers(tx: Database, touched: Map<string, string>): Promise<void> {
  if (touched.size === 0) return;
  const userIds = [...touched.keys()].sort();
  await tx
    .insert(customers)
    .values(userIds.map((userId) => ({ userId, stripeCustomerId: touched.get(userId) || null })))
    .onConflictDoNothing();
  const customerRows = await tx
    .select()
    .from(customers)
    .where(inArray(customers.userId, userIds))
    .orderBy(customers.userId)
    .for("update");
  // NO KEY UPDATE, as auth takes it (apply-tier-change.ts): a concurrent refresh only needs KEY SHARE.
  const userRows = await tx.select().from(users).where(inArray(users.id, userIds)).for("no key update");
  const customersById = new Map(customerRows.map((row) => [row.userId, row] as const));
  const usersById = new Map(userRows.map((row) => [row.id, row] as const));
  const tiers = await entitledTiers(tx, userIds);
  const changes: TierChange[] = [];
  for (const userId of userIds) {
    const customer = customersById.get(userId);
    const user = usersById.get(userId);
    // The insert above did nothing for a customer id another user holds (ON CONFLICT covers both keys).
    if (!customer) throw new LineRefused(`Stripe customer ${touched.get(userId)} belongs to another user`);
    if (!user) throw new LineRefused(`user ${userId} vanished during the import`);
    const customerId = touched.get(userId);
    if (customerId && customer.stripeCustomerId === null) {
      await tx.update(customers).set({ stripeCustomerId: customerId }).where(eq(customers.userId, userId));
    }
    const tier = tiers.get(userId) ?? "free";
    if (tier === customer.tier && tier === user.tier) continue;
    const occurredAt = Math.max(Date.now(), customer.tierChangedAt + 1, (user.tierChangedAt ?? 0) + 1);
    changes.push({ userId, tier, occurredAt, downgrade: tierRank(tier) < tierRank(user.tier) });
  }
  await applyTierChanges(tx, changes);
}

interface TierChange {
  userId: string;
  tier: Tier;
  occurredAt: number;
  downgrade: boolean;
}

/** Both sides in two statements, whatever the number of users. */
async function applyTierChanges(tx: Database, changes: TierChange[]): Promise<void> {
  if (changes.length === 0) return;
  const values = sql.join(
    changes.map((change) => sql`(${change.userId}, ${change.tier}, ${change.occurredAt}::bigint)`),
    sql`, `,
  );
  await tx.execute(
    sql`update billing.customers as c set tier = v.tier, tier_changed_at = v.at, updated_at = now()
        from (values ${values}) as v(user_id, tier, at) where c.user_id = v.user_id`,
  );
  await tx.execute(
    sql`update auth.users as u set tier = v.tier, tier_changed_at = v.at, updated_at = now()
        from (values ${values}) as v(user_id, tier, at) where u.id = v.user_id::uuid`,
  );
  for (const change of changes) {
    if (change.downgrade) await revokeSessions(tx, { userId: change.userId, reason: "tier_downgrade" });
  }
}

/** Billing's rule (src/billing/sync.ts) per user: the highest tier among the entitled subscriptions, else free. */
async function entitledTiers(tx: Database, userIds: string[]): Promise<Map<string, Tier>> {
  const tiers = new Map<string, Tier>();
  for (const row of await tx.select().from(subscriptions).where(inArray(subscriptions.userId, userIds))) {
    const current = tiers.get(row.userId) ?? "free";
    if (isEntitled(row) && row.tier && tierRank(row.tier) > tierRank(current)) tiers.set(row.userId, row.tier);
  }
  return tiers;
}
