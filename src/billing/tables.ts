import { bigint, boolean, index, integer, jsonb, pgSchema, text, timestamp } from "drizzle-orm/pg-core";
import type { TierChangedEvent } from "../shared/events/tier-changed";
import type { Tier } from "../shared/tiers";

export const billing = pgSchema("billing");

/**
 * One row per user who ever started a checkout. The row is the per-user lock every billing write
 * takes (SELECT ... FOR UPDATE), which is what keeps customer creation and tier changes serial.
 */
export const customers = billing.table("customers", {
  userId: text("user_id").primaryKey(),
  /** Null until Stripe has created the customer; set once, never replaced. */
  stripeCustomerId: text("stripe_customer_id").unique(),
  /** The tier billing last announced for this user (what auth was told). */
  tier: text("tier").$type<Tier>().notNull().default("free"),
  /** `occurredAt` of the last announced change (ms since epoch); strictly increasing per user. */
  tierChangedAt: bigint("tier_changed_at", { mode: "number" }).notNull().default(0),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Our copy of each Stripe subscription, always written from a fresh read of Stripe. */
export const subscriptions = billing.table(
  "subscriptions",
  {
    /** Stripe's subscription id (sub_...). */
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    stripeCustomerId: text("stripe_customer_id").notNull(),
    /** Stripe's status verbatim (active, trialing, past_due, canceled, unpaid, ...). */
    status: text("status").notNull(),
    /** The first item; a tier change swaps this item's price. */
    itemId: text("item_id"),
    priceId: text("price_id"),
    /** The tier the price grants while the status entitles; null for a price we do not sell. */
    tier: text("tier").$type<Tier>(),
    currentPeriodEnd: timestamp("current_period_end", { withTimezone: true }),
    cancelAtPeriodEnd: boolean("cancel_at_period_end").notNull().default(false),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    stripeCreatedAt: timestamp("stripe_created_at", { withTimezone: true }).notNull(),
    syncedAt: timestamp("synced_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("subscriptions_user_idx").on(table.userId)],
);

/** Stripe event ids already applied; inserted in the same transaction as the event's effect. */
export const processedEvents = billing.table("processed_events", {
  eventId: text("event_id").primaryKey(),
  type: text("type").notNull(),
  processedAt: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Tier changes committed but not yet on the Redis Stream. Written in the subscription's
 * transaction, deleted by the relay once the stream has the event.
 */
export const outbox = billing.table("outbox", {
  /** Drained in id order, so one user's changes reach the stream in the order they were made. */
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  userId: text("user_id").notNull(),
  event: jsonb("event").$type<TierChangedEvent>().notNull(),
  attempts: integer("attempts").notNull().default(0),
  lastError: text("last_error"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});
