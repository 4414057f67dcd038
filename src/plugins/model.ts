import { z } from "zod";
import { named } from "../shared/contract";
import { Tier } from "../shared/tiers";
import { ED25519_PUBLIC_KEY, PluginCategory } from "./manifest";
import { PaymentWebhookResult } from "./payments/webhook";
import { SEMVER } from "./semver";

const Uuid = z.uuid();
const Instant = z.string();

/**
 * Text shown to other people: no leading or trailing space. Control characters never get this far:
 * the sanitizer removes them from every body and query (src/shared/sanitizer.ts).
 */
const ShownText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((value) => value.trim() === value, "must not start or end with whitespace");
const HttpsUrl = z
  .string()
  .max(2048)
  .regex(/^https:\/\/[^\s/?#]+\S*$/, "must be an https:// URL")
  .refine((value) => URL.canParse(value), "must be a valid URL");

// Developers.

export const RegisterDeveloperInput = z
  .object({
    display_name: ShownText(80).min(1),
    /** Ed25519 public key, base64 of its 32 raw bytes: it verifies every manifest the developer signs. */
    public_key: z.string().regex(ED25519_PUBLIC_KEY, "must be base64 of a 32-byte Ed25519 public key"),
  })
  .strict();
export type RegisterDeveloperInput = z.infer<typeof RegisterDeveloperInput>;

export const UpdateDeveloperInput = z
  .object({
    display_name: ShownText(80).min(1).optional(),
    /** A new key verifies the versions published from now on; earlier ones stay as verified. */
    public_key: z.string().regex(ED25519_PUBLIC_KEY, "must be base64 of a 32-byte Ed25519 public key").optional(),
  })
  .strict()
  .refine((input) => input.display_name !== undefined || input.public_key !== undefined, "nothing to change");
export type UpdateDeveloperInput = z.infer<typeof UpdateDeveloperInput>;

export const Developer = z.object({
  display_name: z.string(),
  public_key: z.string(),
  created_at: Instant,
  updated_at: Instant,
});
export type Developer = z.infer<typeof Developer>;

// Publishing.

export const PublishInput = z
  .object({
    /** The manifest as signed; its schema is served at `GET /api/v1/plugins/manifest-schema`. */
    manifest: z.record(z.string(), z.unknown()),
    /** Ed25519 over the manifest's canonical JSON (docs/plugins.md), base64 of the 64 bytes. */
    signature: z.string().min(1).max(200),
  })
  .strict();
export type PublishInput = z.infer<typeof PublishInput>;

export const ListingInput = z
  .object({
    homepage_url: HttpsUrl.nullable(),
    support_url: HttpsUrl.nullable(),
  })
  .strict();
export type ListingInput = z.infer<typeof ListingInput>;

export const PluginParams = z.object({ id: Uuid }).strict();
export type PluginParams = z.infer<typeof PluginParams>;

export const VersionParams = z
  .object({ id: Uuid, version: z.string().max(64).regex(SEMVER, "must be a semantic version") })
  .strict();
export type VersionParams = z.infer<typeof VersionParams>;

/** What a version asks for, and what a user granted: the same three lists. */
export const Permissions = z.object({
  device_tools: z.array(z.string()),
  origins: z.array(z.string()),
  data: z.array(z.string()),
});
export type Permissions = z.infer<typeof Permissions>;

export const Grants = z
  .object({
    device_tools: z.array(z.string().max(64)).max(64),
    origins: z.array(z.string().max(300)).max(20),
    data: z.array(z.string().max(32)).max(16),
  })
  .strict();
export type Grants = z.infer<typeof Grants>;

export const Pricing = z.object({
  model: z.enum(["free", "one_off", "monthly"]),
  amount: z.number().int().optional(),
  currency: z.string().optional(),
});

export const Runtime = z.object({
  type: z.enum(["remote", "local"]),
  endpoint: z.string().optional(),
  package: z.object({ url: z.string(), sha256: z.string() }).optional(),
});

export const PluginVersion = z.object({
  version: z.string(),
  status: z.enum(["draft", "in_review", "published", "rejected"]),
  changelog: z.string(),
  runtime: Runtime,
  tools: z.array(z.object({ name: z.string(), description: z.string() })),
  permissions: Permissions,
  pricing: Pricing,
  tiers: z.array(Tier),
  created_at: Instant,
  submitted_at: Instant.nullable(),
  reviewed_at: Instant.nullable(),
  /** Why an admin rejected it (shown to its developer and admins only). */
  review_note: z.string().nullable(),
  /** The manifest exactly as signed, the signature and the key that verified it: anyone may check them. */
  manifest: z.record(z.string(), z.unknown()),
  signature: z.string(),
  signing_key: z.string(),
});
export type PluginVersion = z.infer<typeof PluginVersion>;

export const Rating = z.object({
  /** 0 until the first rating. */
  average: z.number(),
  count: z.number().int(),
});

export const PluginSummary = z.object({
  id: Uuid,
  slug: z.string(),
  name: z.string(),
  description: z.string(),
  icon: z.string(),
  categories: z.array(z.string()),
  publisher: z.object({ name: z.string(), url: z.string().nullable() }),
  status: z.enum(["draft", "in_review", "published"]),
  suspended: z.boolean(),
  installs: z.number().int(),
  rating: Rating,
  /** The live version (null until one is published), its price and where it runs. */
  version: z.string().nullable(),
  pricing: Pricing.nullable(),
  runtime_type: z.enum(["remote", "local"]).nullable(),
});
export type PluginSummary = z.infer<typeof PluginSummary>;

export const PluginDetail = PluginSummary.extend({
  homepage_url: z.string().nullable(),
  support_url: z.string().nullable(),
  /** Developers and admins only: when and why it was suspended. */
  suspension: z.object({ at: Instant, reason: z.string() }).nullable(),
  created_at: Instant,
  /** Newest first: the published ones for the marketplace, every one for its developer. */
  versions: z.array(PluginVersion),
});
export type PluginDetail = z.infer<typeof PluginDetail>;

export const PluginList = z.object({ items: z.array(PluginSummary) });
export type PluginList = z.infer<typeof PluginList>;

// The marketplace.

/** Search text, at most 200 characters (the sanitizer has removed control characters, NUL included). */
const SearchText = z.string().trim().min(1).max(200);

export const CatalogQuery = z
  .object({
    /** Words to find in the name or description (web-search syntax: "quoted phrase", -excluded, or). */
    q: SearchText.optional(),
    category: PluginCategory.optional(),
    sort: z.enum(["installs", "rating"]).default("installs"),
    limit: z.coerce.number().int().min(1).max(50).default(20),
    cursor: z.string().max(300).optional(),
  })
  .strict();
export type CatalogQuery = z.infer<typeof CatalogQuery>;

export const CatalogPage = z.object({ items: z.array(PluginSummary), next_cursor: z.string().nullable() });
export type CatalogPage = z.infer<typeof CatalogPage>;

// Ratings and reviews.

export const ReviewInput = z
  .object({
    rating: z.number().int().min(1).max(5),
    text: z.string().max(2000).default(""),
  })
  .strict();
export type ReviewInput = z.infer<typeof ReviewInput>;

export const Review = z.object({
  id: Uuid,
  rating: z.number().int(),
  text: z.string(),
  created_at: Instant,
  updated_at: Instant,
  /** The caller's own review. Reviewers are not named: a review shows no user id. */
  mine: z.boolean(),
});
export type Review = z.infer<typeof Review>;

export const ReviewListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(50).default(20),
    cursor: z.string().max(300).optional(),
  })
  .strict();
export type ReviewListQuery = z.infer<typeof ReviewListQuery>;

export const ReviewPage = z.object({ items: z.array(Review), rating: Rating, next_cursor: z.string().nullable() });
export type ReviewPage = z.infer<typeof ReviewPage>;

export const ReviewParams = z.object({ id: Uuid, review_id: Uuid }).strict();
export type ReviewParams = z.infer<typeof ReviewParams>;

export const ReportInput = z
  .object({
    reason: z.enum(["spam", "abuse", "off_topic", "other"]),
    note: ShownText(500).optional(),
  })
  .strict();
export type ReportInput = z.infer<typeof ReportInput>;

// Installs.

export const InstallInput = z
  .object({
    plugin_id: Uuid,
    /** What the user allows, each a subset of what the live version asks for (all of it, or less). */
    grants: Grants,
  })
  .strict();
export type InstallInput = z.infer<typeof InstallInput>;

export const InstallParams = z.object({ plugin_id: Uuid }).strict();
export type InstallParams = z.infer<typeof InstallParams>;

export const UpgradeInput = z.object({ grants: Grants }).strict();
export type UpgradeInput = z.infer<typeof UpgradeInput>;

/** Why an install is not offered to the agent now; it stays installed, with its grants, for when it is again. */
export const InstallUnavailableReason = z.object({
  code: z.enum(["suspended", "unpublished", "tier_not_supported", "payment_required"]),
  message: z.string(),
});
export type InstallUnavailableReason = z.infer<typeof InstallUnavailableReason>;

export const Install = z.object({
  plugin_id: Uuid,
  slug: z.string(),
  name: z.string(),
  icon: z.string(),
  version: z.string(),
  runtime_type: z.enum(["remote", "local"]),
  grants: Permissions,
  /**
   * False while the agent is not offered it: suspended, unpaid, or its installed version not for
   * the tier of the token asking.
   */
  available: z.boolean(),
  /** Why it is not available (null while it is). */
  unavailable_reason: InstallUnavailableReason.nullable(),
  installed_at: Instant,
  updated_at: Instant,
  /**
   * A newer live version. `needs_consent`: it asks for something the installed one did not, so the
   * install stays where it is until the user accepts (`POST /installs/:plugin_id/upgrade`).
   */
  upgrade: z
    .object({
      version: z.string(),
      needs_consent: z.boolean(),
      permissions: Permissions,
      /** What it asks for beyond the installed version. */
      new_permissions: Permissions,
    })
    .nullable(),
});
export type Install = z.infer<typeof Install>;

export const InstallList = z.object({ items: z.array(Install) });
export type InstallList = z.infer<typeof InstallList>;

// Admins.

export const ReasonInput = z.object({ reason: ShownText(1000).min(1) }).strict();
export type ReasonInput = z.infer<typeof ReasonInput>;

export const QueueQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().max(300).optional(),
  })
  .strict();
export type QueueQuery = z.infer<typeof QueueQuery>;

export const QueuedVersion = z.object({
  plugin_id: Uuid,
  slug: z.string(),
  name: z.string(),
  developer: z.object({ user_id: z.string(), display_name: z.string() }),
  version: PluginVersion,
});

export const ReviewQueue = z.object({ items: z.array(QueuedVersion), next_cursor: z.string().nullable() });
export type ReviewQueue = z.infer<typeof ReviewQueue>;

export const ReportedReview = z.object({
  id: Uuid,
  plugin_id: Uuid,
  slug: z.string(),
  rating: z.number().int(),
  text: z.string(),
  report_count: z.number().int(),
  reasons: z.array(z.string()),
  created_at: Instant,
});

export const ReportedReviews = z.object({ items: z.array(ReportedReview) });
export type ReportedReviews = z.infer<typeof ReportedReviews>;

export const AdminReviewParams = z.object({ review_id: Uuid }).strict();
export type AdminReviewParams = z.infer<typeof AdminReviewParams>;

export const ManifestJsonSchema = z.record(z.string(), z.unknown());

// Paid plugins: publishers' payment accounts, checkout, sales.

/** Where Stripe sends the browser back: an absolute URL whose origin the deployment allows. */
const RedirectUrl = z.url().max(2048);

export const PaymentAccountInput = z
  .object({
    /** ISO 3166-1 alpha-2 country of the publisher; Stripe asks during onboarding when left out. */
    country: z
      .string()
      .regex(/^[A-Z]{2}$/, "must be an ISO 3166-1 alpha-2 code, e.g. IT")
      .optional(),
  })
  .strict();
export type PaymentAccountInput = z.infer<typeof PaymentAccountInput>;

export const PaymentAccount = z.object({
  /** The publisher's Stripe Express account. */
  account_id: z.string(),
  /** Stripe lets the account be paid: the developer's paid plugins can be bought. */
  charges_enabled: z.boolean(),
  payouts_enabled: z.boolean(),
  /** The publisher finished Stripe's onboarding (Stripe may still be verifying). */
  details_submitted: z.boolean(),
  /** What Stripe still asks of the publisher (its requirement names). */
  currently_due: z.array(z.string()),
  /** Why Stripe does not let the account be paid yet; null when it does. */
  disabled_reason: z.string().nullable(),
  /** When Stripe last told the service the account's state. */
  updated_at: Instant.nullable(),
});
export type PaymentAccount = z.infer<typeof PaymentAccount>;

export const OnboardingLinkInput = z
  .object({
    /** Where Stripe sends the publisher when an expired or used link is opened: a page asking for a new one. */
    refresh_url: RedirectUrl,
    /** Where Stripe sends the publisher when onboarding is done (or left). */
    return_url: RedirectUrl,
  })
  .strict();
export type OnboardingLinkInput = z.infer<typeof OnboardingLinkInput>;

export const OnboardingLink = z.object({ url: z.string(), expires_at: Instant });
export type OnboardingLink = z.infer<typeof OnboardingLink>;

export const CheckoutInput = z
  .object({
    plugin_id: Uuid,
    /** What the user allows the plugin, as for an install: it is installed with this once paid. */
    grants: Grants,
    success_url: RedirectUrl,
    cancel_url: RedirectUrl,
  })
  .strict();
export type CheckoutInput = z.infer<typeof CheckoutInput>;

export const PluginCheckout = z.object({
  session_id: z.string(),
  /** Stripe's payment page: open it in the browser. */
  url: z.string(),
  pricing: z.object({ model: z.enum(["one_off", "monthly"]), amount: z.number().int(), currency: z.string() }),
  /** One-off: the platform's fee taken from the payment; monthly: null (the percent applies to each invoice). */
  platform_fee_amount: z.number().int().nullable(),
  platform_fee_percent: z.number(),
});
export type PluginCheckout = z.infer<typeof PluginCheckout>;

export const SalesQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(50).default(20),
    cursor: z.string().max(300).optional(),
  })
  .strict();
export type SalesQuery = z.infer<typeof SalesQuery>;

export const SalesTotals = z.object({
  currency: z.string(),
  /** Purchases made (a subscription counts once, with its first payment). */
  purchases: z.number().int(),
  /** Subscriptions' renewals paid (each month after the first). */
  renewals: z.number().int(),
  /** What buyers paid, purchases and renewals, in the currency's minor unit. */
  gross: z.number().int(),
  /** The platform's share of `gross`. */
  platform_fees: z.number().int(),
  /**
   * Payments refunded in part or in full (one-off purchases, subscriptions' first payments and
   * renewals), and the amount given back.
   */
  refunds: z.object({ count: z.number().int(), amount: z.number().int() }),
  /** Purchases that pay for the plugin now (not refunded, subscription not ended). */
  active: z.number().int(),
});

export const PluginSales = z.object({
  plugin_id: Uuid,
  slug: z.string(),
  name: z.string(),
  /** One entry per currency sold in. */
  totals: z.array(SalesTotals),
});
export type PluginSales = z.infer<typeof PluginSales>;

export const SalesPage = z.object({ items: z.array(PluginSales), next_cursor: z.string().nullable() });
export type SalesPage = z.infer<typeof SalesPage>;

// Wire names of the models.
named("RegisterDeveloperInput", RegisterDeveloperInput);
named("UpdateDeveloperInput", UpdateDeveloperInput);
named("Developer", Developer);
named("PublishPluginInput", PublishInput);
named("PluginListingInput", ListingInput);
named("PluginPermissions", Permissions);
named("PluginGrants", Grants);
named("PluginVersion", PluginVersion);
named("PluginSummary", PluginSummary);
named("Plugin", PluginDetail);
named("PluginList", PluginList);
named("PluginCatalogPage", CatalogPage);
named("PluginReviewInput", ReviewInput);
named("PluginReview", Review);
named("PluginReviewPage", ReviewPage);
named("PluginReviewReportInput", ReportInput);
named("PluginInstallInput", InstallInput);
named("PluginUpgradeInput", UpgradeInput);
named("PluginInstall", Install);
named("PluginInstallList", InstallList);
named("PluginReasonInput", ReasonInput);
named("PluginReviewQueue", ReviewQueue);
named("ReportedPluginReviews", ReportedReviews);
named("PluginManifestSchema", ManifestJsonSchema);
named("PluginPaymentAccountInput", PaymentAccountInput);
named("PluginPaymentAccount", PaymentAccount);
named("PluginOnboardingLinkInput", OnboardingLinkInput);
named("PluginOnboardingLink", OnboardingLink);
named("PluginCheckoutInput", CheckoutInput);
named("PluginCheckout", PluginCheckout);
named("PluginSalesTotals", SalesTotals);
named("PluginSales", PluginSales);
named("PluginSalesPage", SalesPage);
named("PluginPaymentWebhookResult", PaymentWebhookResult);
