import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  boolean,
  check,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type { Tier } from "../shared/tiers";
import type { PluginManifest } from "./manifest";
import type { PaidPricingModel } from "./payments/metadata";

export const plugins = pgSchema("plugins");

/** PostgreSQL's full-text document type; only ever written by PostgreSQL itself (a generated column). */
const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });

/**
 * Users who publish plugins: the name shown as publisher's account, the key their manifests are
 * signed with, and the Stripe Express account their paid plugins' sales go to.
 */
export const developers = plugins.table("developers", {
  userId: text("user_id").primaryKey(),
  displayName: text("display_name").notNull(),
  /** Ed25519, base64 of the 32 raw bytes. Replacing it leaves published versions as they were verified. */
  publicKey: text("public_key").notNull(),
  /** The publisher's Stripe Express account (acct_...), made once, never replaced. */
  stripeAccountId: text("stripe_account_id").unique(),
  /** Stripe lets the account be paid: the publisher's paid plugins can be sold. */
  chargesEnabled: boolean("charges_enabled").notNull().default(false),
  payoutsEnabled: boolean("payouts_enabled").notNull().default(false),
  /** The publisher went through Stripe's onboarding (Stripe may still be verifying). */
  detailsSubmitted: boolean("details_submitted").notNull().default(false),
  /**
   * When Stripe said what the flags hold (the `account.updated` event's time, or a read of the
   * account): an older event arriving late changes nothing.
   */
  stripeAccountUpdatedAt: timestamp("stripe_account_updated_at", { withTimezone: true, precision: 3 }),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * `draft`: no version submitted yet; `in_review`: one waits for an admin, none published;
 * `published`: a version is live. Suspension is apart (`suspended_at`): reversible, and it keeps
 * whatever state the plugin had.
 */
export type PluginStatus = "draft" | "in_review" | "published";

/**
 * One row per plugin: its listing (name, description, icon, categories from the live version's
 * signed manifest, or the newest one until a version is live; the links the developer edits), its
 * counters, and the full-text document search reads. The counters are changed only in the
 * transaction that changes what they count.
 */
export const pluginRows = plugins.table(
  "plugins",
  {
    id: uuid("id").primaryKey(),
    /** Unique and never changed: the namespace of the plugin's tools in the agent. */
    slug: text("slug").notNull(),
    developerId: text("developer_id")
      .notNull()
      .references(() => developers.userId, { onDelete: "cascade" }),
    status: text("status").$type<PluginStatus>().notNull().default("draft"),
    /** The published version new installs get. No foreign key: versions reference this table. */
    currentVersionId: uuid("current_version_id"),
    name: text("name").notNull(),
    description: text("description").notNull(),
    icon: text("icon").notNull(),
    categories: text("categories").array().notNull(),
    publisherName: text("publisher_name").notNull(),
    publisherUrl: text("publisher_url"),
    /** The listing's own links, edited without a new version (nothing in them is signed). */
    homepageUrl: text("homepage_url"),
    supportUrl: text("support_url"),
    installCount: integer("install_count").notNull().default(0),
    ratingSum: integer("rating_sum").notNull().default(0),
    ratingCount: integer("rating_count").notNull().default(0),
    /** 0 until the first rating; stored so the marketplace can sort and page by it. */
    ratingAvg: doublePrecision("rating_avg")
      .notNull()
      .generatedAlwaysAs(
        sql`case when "rating_count" = 0 then 0 else "rating_sum"::double precision / "rating_count" end`,
      ),
    /**
     * What marketplace search matches: the name (weight A) and the description (B), with the
     * `simple` configuration (no stemming, no stop words): listings are in any language.
     */
    search: tsvector("search")
      .notNull()
      .generatedAlwaysAs(
        sql`setweight(to_tsvector('simple', "name"), 'A') || setweight(to_tsvector('simple', "description"), 'B')`,
      ),
    suspendedAt: timestamp("suspended_at", { withTimezone: true, precision: 3 }),
    suspendedReason: text("suspended_reason"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("plugins_slug_idx").on(table.slug),
    index("plugins_developer_idx").on(table.developerId),
    index("plugins_search_idx").using("gin", table.search),
    index("plugins_categories_idx").using("gin", table.categories),
    // The marketplace's two orders, over what it shows.
    index("plugins_by_installs_idx")
      .on(table.installCount.desc(), table.id.desc())
      .where(sql`${table.status} = 'published' and ${table.suspendedAt} is null`),
    index("plugins_by_rating_idx")
      .on(table.ratingAvg.desc(), table.id.desc())
      .where(sql`${table.status} = 'published' and ${table.suspendedAt} is null`),
    check("plugins_status_check", sql`${table.status} in ('draft', 'in_review', 'published')`),
    check("plugins_counters_check", sql`${table.installCount} >= 0 and ${table.ratingCount} >= 0`),
  ],
);

/** `draft` → `in_review` (the developer submits) → `published` or `rejected` (an admin decides). */
export type VersionStatus = "draft" | "in_review" | "published" | "rejected";

/**
 * Every version of every plugin: the signed manifest as sent, never changed afterwards (only its
 * review state moves). Versions rise strictly in semver precedence per plugin.
 */
export const versions = plugins.table(
  "versions",
  {
    id: uuid("id").primaryKey(),
    pluginId: uuid("plugin_id")
      .notNull()
      .references(() => pluginRows.id, { onDelete: "cascade" }),
    version: text("version").notNull(),
    status: text("status").$type<VersionStatus>().notNull().default("draft"),
    manifest: jsonb("manifest").$type<PluginManifest>().notNull(),
    /** Ed25519 over the manifest's canonical JSON (docs/plugins.md), base64. */
    signature: text("signature").notNull(),
    /** The developer's key that verified it, kept: the developer may replace their key later. */
    signingKey: text("signing_key").notNull(),
    /** Hex SHA-256 of the canonical JSON: what was signed, for audit. */
    manifestSha256: text("manifest_sha256").notNull(),
    /** Why an admin rejected it. */
    reviewNote: text("review_note"),
    reviewedBy: text("reviewed_by"),
    submittedAt: timestamp("submitted_at", { withTimezone: true, precision: 3 }),
    reviewedAt: timestamp("reviewed_at", { withTimezone: true, precision: 3 }),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("versions_plugin_version_idx").on(table.pluginId, table.version),
    index("versions_review_queue_idx").on(table.submittedAt, table.id).where(sql`${table.status} = 'in_review'`),
    check("versions_status_check", sql`${table.status} in ('draft', 'in_review', 'published', 'rejected')`),
  ],
);

/**
 * A user's installed plugins, one row per user and plugin, on one published version, with exactly
 * what the user granted of what that version asks for.
 */
export const installs = plugins.table(
  "installs",
  {
    id: uuid("id").primaryKey(),
    userId: text("user_id").notNull(),
    pluginId: uuid("plugin_id")
      .notNull()
      .references(() => pluginRows.id, { onDelete: "cascade" }),
    versionId: uuid("version_id")
      .notNull()
      .references(() => versions.id),
    grantedDeviceTools: text("granted_device_tools").array().notNull(),
    grantedOrigins: text("granted_origins").array().notNull(),
    grantedData: text("granted_data").array().notNull(),
    /** The user's tier at the install or the last upgrade (a lookup has no token to read it from). */
    tier: text("tier").$type<Tier>().notNull(),
    /**
     * The active purchase that pays for a paid plugin (a one-off payment or a subscription): a paid
     * plugin is offered to the agent only with one. Null for free plugins, and for a paid one whose
     * subscription ended (the install stays, unusable, until it resumes or is bought again).
     */
    entitlementId: uuid("entitlement_id").references((): AnyPgColumn => purchases.id, { onDelete: "set null" }),
    installedAt: timestamp("installed_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("installs_user_plugin_idx").on(table.userId, table.pluginId),
    index("installs_plugin_version_idx").on(table.pluginId, table.versionId),
  ],
);

/** One rating (1-5) and review per user and plugin, by users who installed it. */
export const reviews = plugins.table(
  "reviews",
  {
    id: uuid("id").primaryKey(),
    pluginId: uuid("plugin_id")
      .notNull()
      .references(() => pluginRows.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull(),
    rating: smallint("rating").notNull(),
    body: text("body").notNull(),
    /** Reports by other users; admins see the reported ones first. */
    reportCount: integer("report_count").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("reviews_plugin_user_idx").on(table.pluginId, table.userId),
    index("reviews_plugin_list_idx").on(table.pluginId, table.createdAt.desc(), table.id.desc()),
    index("reviews_user_idx").on(table.userId),
    index("reviews_reported_idx").on(table.reportCount.desc(), table.id).where(sql`${table.reportCount} > 0`),
    check("reviews_rating_check", sql`${table.rating} between 1 and 5`),
  ],
);

export type ReportReason = "spam" | "abuse" | "off_topic" | "other";

/** A user's report of another user's review: one per reporter and review. */
export const reviewReports = plugins.table(
  "review_reports",
  {
    reviewId: uuid("review_id")
      .notNull()
      .references(() => reviews.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull(),
    reason: text("reason").$type<ReportReason>().notNull(),
    note: text("note"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ columns: [table.reviewId, table.userId] }),
    index("review_reports_user_idx").on(table.userId),
  ],
);

/**
 * `active`: it pays for the plugin. `refunded`: fully refunded (the install was removed).
 * `ended`: the subscription stopped paying (`end_reason` says whether for good).
 */
export type PurchaseStatus = "active" | "refunded" | "ended";
/** `canceled`: the subscription is over for good. `lapsed`: Stripe stopped collecting; a payment can resume it. */
export type PurchaseEndReason = "canceled" | "lapsed";

/**
 * Entitlements: a user's purchase of a paid plugin, one row per completed Stripe Checkout. It pays
 * for the plugin whatever version is live later (`version` is the one bought). Written only by the
 * payment webhook's outcomes, each applied once; `last_occurred_at` orders them, so an event older
 * than the last applied one for the purchase changes nothing.
 */
export const purchases = plugins.table(
  "purchases",
  {
    id: uuid("id").primaryKey(),
    /** The buyer; null once their account is deleted (the sale stays in the publisher's figures). */
    userId: text("user_id"),
    pluginId: uuid("plugin_id")
      .notNull()
      .references(() => pluginRows.id, { onDelete: "cascade" }),
    versionId: uuid("version_id")
      .notNull()
      .references(() => versions.id),
    version: text("version").notNull(),
    model: text("model").$type<PaidPricingModel>().notNull(),
    /** What the buyer paid (a subscription: its first month), in the currency's minor unit. */
    amount: integer("amount").notNull(),
    currency: text("currency").notNull(),
    /** The platform's share of `amount` (PLUGIN_PLATFORM_FEE_PERCENT); the publisher got the rest. */
    platformFee: integer("platform_fee").notNull(),
    /** Refunded so far, in all (Stripe's running total). */
    amountRefunded: integer("amount_refunded").notNull().default(0),
    checkoutSessionId: text("checkout_session_id").notNull(),
    /** One-off: the payment a refund names. */
    paymentIntentId: text("payment_intent_id"),
    /** Monthly: the subscription whose end ends the entitlement. */
    subscriptionId: text("subscription_id"),
    /**
     * Monthly: the subscription's first invoice, which Checkout made and `amount` paid (the session's
     * `invoice`): a refund of that payment is matched with the purchase through it, in
     * `payment_refunds`. Null for one-off purchases and for subscriptions recorded before it was kept.
     */
    firstInvoiceId: text("first_invoice_id"),
    /** The Stripe customer Checkout made for the buyer; null once their account is deleted. */
    customerId: text("customer_id"),
    status: text("status").$type<PurchaseStatus>().notNull().default("active"),
    endReason: text("end_reason").$type<PurchaseEndReason>(),
    /** The buyer uninstalled a monthly plugin: Stripe ends the subscription at the period's end. */
    cancelAtPeriodEnd: boolean("cancel_at_period_end").notNull().default(false),
    /** The Stripe time of the newest outcome applied to this purchase. */
    lastOccurredAt: timestamp("last_occurred_at", { withTimezone: true, precision: 3 }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("purchases_checkout_session_idx").on(table.checkoutSessionId),
    uniqueIndex("purchases_payment_intent_idx").on(table.paymentIntentId),
    uniqueIndex("purchases_subscription_idx").on(table.subscriptionId),
    index("purchases_user_plugin_idx").on(table.userId, table.pluginId),
    index("purchases_plugin_idx").on(table.pluginId),
    check("purchases_status_check", sql`${table.status} in ('active', 'refunded', 'ended')`),
    check("purchases_model_check", sql`${table.model} in ('one_off', 'monthly')`),
    check(
      "purchases_end_reason_check",
      sql`${table.endReason} is null or ${table.endReason} in ('canceled', 'lapsed')`,
    ),
  ],
);

/** What Stripe last said of a plugin subscription: paying, stopped collecting, or over for good. */
export type SubscriptionState = "active" | "lapsed" | "canceled";

/**
 * The newest state Stripe told of each plugin subscription, by the Stripe time of the event that
 * told it, kept whether or not its purchase is recorded yet: Stripe may deliver a subscription's end
 * before its Checkout's completion, and the completion then finds the end here and grants nothing.
 * `canceled` is final. Every outcome about a subscription writes (or locks) its row first, so the
 * completion and the end serialise on it whichever comes first.
 */
export const subscriptionStates = plugins.table(
  "subscription_states",
  {
    subscriptionId: text("subscription_id").primaryKey(),
    state: text("state").$type<SubscriptionState>().notNull(),
    /** The Stripe time of the event that told the state. */
    occurredAt: timestamp("occurred_at", { withTimezone: true, precision: 3 }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [check("subscription_states_state_check", sql`${table.state} in ('active', 'lapsed', 'canceled')`)],
);

/**
 * Each paid renewal of a monthly plugin: one row per Stripe invoice after the first (the purchase
 * holds the first month's payment), so the publisher's sales count every month with its fee.
 */
export const subscriptionRenewals = plugins.table(
  "subscription_renewals",
  {
    /** One invoice is paid once: `invoice.paid` and `invoice.payment_succeeded` both name it. */
    invoiceId: text("invoice_id").primaryKey(),
    purchaseId: uuid("purchase_id")
      .notNull()
      .references(() => purchases.id, { onDelete: "cascade" }),
    /** What the buyer paid for the month, in the currency's minor unit. */
    amount: integer("amount").notNull(),
    currency: text("currency").notNull(),
    /** The platform's share of `amount` (the subscription's `application_fee_percent`). */
    platformFee: integer("platform_fee").notNull(),
    /** The Stripe time of the event that said it was paid. */
    paidAt: timestamp("paid_at", { withTimezone: true, precision: 3 }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [index("subscription_renewals_purchase_idx").on(table.purchaseId)],
);

/**
 * What Stripe told of the refunds of each plugin payment, by payment intent (what `charge.refunded`
 * names), kept whether or not a purchase or renewal records the payment yet: Stripe may deliver a
 * refund before its Checkout's completion, and the completion then finds it here and grants
 * nothing. Every refund writes (and locks) its row first, and a one-off payment's completion makes
 * or locks it too, so the two serialise on it whichever comes first (as `subscription_states` does
 * for subscriptions): a completion with nothing refunded leaves a row of 0.
 */
export const paymentRefunds = plugins.table(
  "payment_refunds",
  {
    paymentIntentId: text("payment_intent_id").primaryKey(),
    /** Refunded so far, in all (Stripe's running total: a redelivered or older event never adds). */
    amountRefunded: integer("amount_refunded").notNull().default(0),
    /** The whole payment went back. */
    fullyRefunded: boolean("fully_refunded").notNull().default(false),
    /**
     * The subscription invoice the payment paid (asked of Stripe when the refund names no purchase):
     * the publisher's sales count the refund against that renewal, or against the purchase whose
     * `first_invoice_id` it is.
     */
    invoiceId: text("invoice_id"),
    /** The Stripe time of the newest event that told of the payment. */
    occurredAt: timestamp("occurred_at", { withTimezone: true, precision: 3 }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [index("payment_refunds_invoice_idx").on(table.invoiceId).where(sql`${table.invoiceId} is not null`)],
);

/**
 * Users whose data the service erased (`user_deleted`), written in the erasure's transaction: a
 * payment Stripe completes for one of them afterwards is given back instead of recorded. Only the
 * SHA-256 of the id (enough to recognise it when a payment names it; the id itself stays only in
 * auth's `deleted_users`) and the time.
 */
export const erasedUsers = plugins.table("erased_users", {
  /** Hex SHA-256 of the user id. */
  userIdSha256: text("user_id_sha256").primaryKey(),
  erasedAt: timestamp("erased_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * The plugins of developers whose data the service erased, written in the erasure's transaction (the
 * plugin rows go with it): a payment Stripe completes for one of them afterwards is given back
 * instead of being left to an operator. Only the plugin's id (a random UUID, nothing of the
 * developer) and the time.
 */
export const erasedPlugins = plugins.table("erased_plugins", {
  pluginId: uuid("plugin_id").primaryKey(),
  erasedAt: timestamp("erased_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * What the user granted when they started a Checkout, kept until its payment installs the plugin
 * with exactly that (Stripe's metadata carries who bought what, not the grants). One row per
 * Checkout Session; a newer request for the same session replaces it.
 */
export const checkoutGrants = plugins.table(
  "checkout_grants",
  {
    sessionId: text("session_id").primaryKey(),
    userId: text("user_id").notNull(),
    pluginId: uuid("plugin_id")
      .notNull()
      .references(() => pluginRows.id, { onDelete: "cascade" }),
    grantedDeviceTools: text("granted_device_tools").array().notNull(),
    grantedOrigins: text("granted_origins").array().notNull(),
    grantedData: text("granted_data").array().notNull(),
    /** The user's tier at checkout: the install records it (the webhook has no token to read it from). */
    tier: text("tier").$type<Tier>().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (table) => [index("checkout_grants_user_idx").on(table.userId, table.createdAt)],
);

/** Stripe event ids already applied; inserted first, in the same transaction as the event's effect. */
export const processedPaymentEvents = plugins.table("processed_payment_events", {
  eventId: text("event_id").primaryKey(),
  /** The outcome it was applied as (`purchase_paid`, `subscription_ended`...). */
  type: text("type").notNull(),
  processedAt: timestamp("processed_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});
