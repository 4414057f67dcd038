import { Elysia } from "elysia";
import { JSON_BODY, NoContent, responses, SIGNED_IN } from "../shared/contract";
import { protectedRoutes } from "../shared/protected-routes";
import { perMinute, routeRateLimit } from "../shared/rate-limit";
import { stripeWebhookRoute } from "../shared/stripe-webhook-route";
import {
  approveVersion,
  deleteReviewAsAdmin,
  rejectVersion,
  reportedReviews,
  reviewQueue,
  suspendPlugin,
  unsuspendPlugin,
} from "./admin";
import { getCatalogPlugin, searchCatalog } from "./catalog";
import { startCheckout } from "./checkout";
import type { PluginsContext } from "./context";
import { getDeveloper, registerDeveloper, updateDeveloper } from "./developers";
import { installPlugin, listInstalls, uninstallPlugin, upgradeInstall } from "./installs";
import { manifestJsonSchema } from "./manifest";
import {
  AdminReviewParams,
  CatalogPage,
  CatalogQuery,
  CheckoutInput,
  Developer,
  Install,
  InstallInput,
  InstallList,
  InstallParams,
  ListingInput,
  ManifestJsonSchema,
  OnboardingLink,
  OnboardingLinkInput,
  PaymentAccount,
  PaymentAccountInput,
  PluginCheckout,
  PluginDetail,
  PluginList,
  PluginParams,
  PublishInput,
  QueueQuery,
  ReasonInput,
  RegisterDeveloperInput,
  ReportedReviews,
  ReportInput,
  Review,
  ReviewInput,
  ReviewListQuery,
  ReviewPage,
  ReviewParams,
  ReviewQueue,
  SalesPage,
  SalesQuery,
  UpdateDeveloperInput,
  UpgradeInput,
  VersionParams,
} from "./model";
import { createOnboarding, createPaymentAccount, getPaymentAccount } from "./payment-account";
import { PaymentWebhookResult } from "./payments";
import { addVersion, createPlugin, editListing, getOwnPlugin, listOwnPlugins, submitVersion } from "./publish";
import { receivePaymentWebhook } from "./purchases";
import { createReview, deleteReview, listReviews, reportReview, updateReview } from "./reviews";
import { listSales } from "./sales";

/** Where Traefik sends the plugins service's traffic; literal, so typed clients know every path. */
export const PLUGINS_PREFIX = "/api/v1/plugins" as const;

/** A manifest with 64 tools at their longest is about 100 KiB of JSON. */
const MAX_PLUGINS_BODY_BYTES = 256 * 1024;

/**
 * Checkout, payment-account creation and onboarding links open Stripe sessions: one small budget
 * for the three, besides the service's, the same size as billing's (`billingSessionsPerMinute`).
 */
export const PLUGIN_PAYMENT_SESSIONS_POLICY = "plugin-payment-sessions";

export function pluginsRoutes(ctx: PluginsContext) {
  const { platform, limiter } = ctx;
  const sessionLimit = routeRateLimit(
    platform,
    PLUGIN_PAYMENT_SESSIONS_POLICY,
    perMinute("billingSessionsPerMinute"),
    limiter,
  );
  // The same for every request of this deployment: built once.
  const schema = manifestJsonSchema({
    allowHttpEndpoints: ctx.config.allowHttpEndpoints,
    id: `${platform.env.PUBLIC_URL.replace(/\/$/, "")}${PLUGINS_PREFIX}/manifest-schema`,
  });
  return (
    new Elysia({ name: "plugins", prefix: PLUGINS_PREFIX, tags: ["plugins"] })
      .use(
        stripeWebhookRoute({
          path: "/payments/webhook",
          result: PaymentWebhookResult,
          summary: "Stripe webhook endpoint of plugin payments (signed)",
          description:
            "Called by Stripe for plugin purchases (checkout, refunds, subscriptions) and publishers' Connect accounts: the `Stripe-Signature` header signs the exact bytes of the event.",
          receive: (input) => receivePaymentWebhook({ ctx, input }),
        }),
      )
      .use(
        protectedRoutes({
          platform,
          service: "plugins",
          logger: ctx.logger,
          limiter,
          maxBodyBytes: MAX_PLUGINS_BODY_BYTES,
        }),
      )
      .get("/manifest-schema", () => schema, {
        response: responses({ 200: ManifestJsonSchema }, ...SIGNED_IN),
        detail: { summary: "The JSON Schema (draft 2020-12) every plugin manifest must match" },
      })

      // Developers and publishing: only a plugin's developer sees or changes it (another user: 404).
      .post(
        "/developers/me",
        async ({ user, body, set }) => {
          const developer = await registerDeveloper({ ctx, user, input: body });
          set.status = 201;
          return developer;
        },
        {
          body: RegisterDeveloperInput,
          // 409: already a developer.
          response: responses({ 201: Developer }, ...SIGNED_IN, ...JSON_BODY, 409),
          detail: { summary: "Become a developer: a display name and the Ed25519 key manifests are signed with" },
        },
      )
      .get("/developers/me", ({ user }) => getDeveloper({ ctx, user, input: undefined }), {
        response: responses({ 200: Developer }, ...SIGNED_IN, 404),
        detail: { summary: "The caller's developer account" },
      })
      .put("/developers/me", ({ user, body }) => updateDeveloper({ ctx, user, input: body }), {
        body: UpdateDeveloperInput,
        response: responses({ 200: Developer }, ...SIGNED_IN, ...JSON_BODY, 404),
        detail: { summary: "Change the display name or the signing key (for versions published from now on)" },
      })
      .get("/developers/me/plugins", ({ user }) => listOwnPlugins({ ctx, user, input: undefined }), {
        response: responses({ 200: PluginList }, ...SIGNED_IN),
        detail: { summary: "The caller's plugins, in every state" },
      })
      // A developer's Stripe account (paid plugins pay into it) and what they sold.
      .post(
        "/developers/me/payment-account",
        async ({ user, body, set }) => {
          const account = await createPaymentAccount({ ctx, user, input: body ?? {} });
          set.status = 201;
          return account;
        },
        {
          body: PaymentAccountInput.optional(),
          beforeHandle: sessionLimit,
          // 403 `developer_required`; 409 `payment_account_exists`; 502/503: Stripe refused, is away, or unconfigured.
          response: responses({ 201: PaymentAccount }, ...SIGNED_IN, ...JSON_BODY, 403, 409, 502),
          detail: { summary: "Create the developer's Stripe Express account, which their paid plugins' sales pay" },
        },
      )
      .get("/developers/me/payment-account", ({ user }) => getPaymentAccount({ ctx, user, input: undefined }), {
        response: responses({ 200: PaymentAccount }, ...SIGNED_IN, 403, 404, 502),
        detail: {
          summary: "The developer's Stripe account as Stripe has it now: whether it can be paid, what it lacks",
        },
      })
      .post(
        "/developers/me/payment-account/onboarding-link",
        ({ user, body }) => createOnboarding({ ctx, user, input: body }),
        {
          body: OnboardingLinkInput,
          beforeHandle: sessionLimit,
          response: responses({ 200: OnboardingLink }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 502),
          detail: { summary: "A link to Stripe's onboarding of the developer's account (short-lived, single use)" },
        },
      )
      .get("/developers/me/sales", ({ user, query }) => listSales({ ctx, user, input: query }), {
        query: SalesQuery,
        response: responses({ 200: SalesPage }, ...SIGNED_IN, 403, 422),
        detail: { summary: "The developer's sales per plugin: purchases, gross, platform fees, refunds" },
      })
      .post(
        "/developers/me/plugins",
        async ({ user, body, set }) => {
          const plugin = await createPlugin({ ctx, user, input: body });
          set.status = 201;
          return plugin;
        },
        {
          body: PublishInput,
          // 403 `developer_required`; 409 `slug_taken`; 422 `invalid_manifest` / `invalid_signature`.
          response: responses({ 201: PluginDetail }, ...SIGNED_IN, ...JSON_BODY, 403, 409),
          detail: { summary: "Create a plugin from its first signed manifest (a draft version)" },
        },
      )
      .get("/developers/me/plugins/:id", ({ user, params }) => getOwnPlugin({ ctx, user, input: params }), {
        params: PluginParams,
        response: responses({ 200: PluginDetail }, ...SIGNED_IN, 404, 422),
        detail: { summary: "One of the caller's plugins with every version, its review notes and any suspension" },
      })
      .put(
        "/developers/me/plugins/:id/listing",
        ({ user, params, body }) => editListing({ ctx, user, input: { ...body, id: params.id } }),
        {
          params: PluginParams,
          body: ListingInput,
          response: responses({ 200: PluginDetail }, ...SIGNED_IN, ...JSON_BODY, 404),
          detail: { summary: "Edit the listing's links (homepage, support); the rest comes from the signed manifest" },
        },
      )
      .post(
        "/developers/me/plugins/:id/versions",
        async ({ user, params, body, set }) => {
          const plugin = await addVersion({ ctx, user, input: { ...body, id: params.id } });
          set.status = 201;
          return plugin;
        },
        {
          params: PluginParams,
          body: PublishInput,
          // 409 `version_exists` / `version_not_increasing`; versions are immutable.
          response: responses({ 201: PluginDetail }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: { summary: "Publish a new version: a signed manifest of a higher semantic version (a draft)" },
        },
      )
      .post(
        "/developers/me/plugins/:id/versions/:version/submit",
        ({ user, params }) => submitVersion({ ctx, user, input: params }),
        {
          params: VersionParams,
          // 400: a body that does not parse (the route takes none); 409 `invalid_state`.
          response: responses({ 200: PluginDetail }, ...SIGNED_IN, 400, 404, 409, 422),
          detail: { summary: "Send a draft version to review" },
        },
      )

      // The marketplace: published, unsuspended plugins only.
      .get("/catalog", ({ user, query }) => searchCatalog({ ctx, user, input: query }), {
        query: CatalogQuery,
        response: responses({ 200: CatalogPage }, ...SIGNED_IN, 422),
        detail: { summary: "Search and browse the marketplace: text, category, by installs or rating" },
      })
      .get("/catalog/:id", ({ user, params }) => getCatalogPlugin({ ctx, user, input: params }), {
        params: PluginParams,
        response: responses({ 200: PluginDetail }, ...SIGNED_IN, 404, 422),
        detail: { summary: "A plugin's page: its published versions with their changelogs, rating and installs" },
      })
      .get(
        "/catalog/:id/reviews",
        ({ user, params, query }) => listReviews({ ctx, user, input: { ...query, id: params.id } }),
        {
          params: PluginParams,
          query: ReviewListQuery,
          response: responses({ 200: ReviewPage }, ...SIGNED_IN, 404, 422),
          detail: { summary: "A plugin's reviews, newest first" },
        },
      )
      .post(
        "/catalog/:id/reviews",
        async ({ user, params, body, set }) => {
          const review = await createReview({ ctx, user, input: { ...body, id: params.id } });
          set.status = 201;
          return review;
        },
        {
          params: PluginParams,
          body: ReviewInput,
          // 403 `install_required`; 409 `already_reviewed`.
          response: responses({ 201: Review }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: { summary: "Rate and review a plugin you installed (one review per user)" },
        },
      )
      .put(
        "/catalog/:id/reviews/me",
        ({ user, params, body }) => updateReview({ ctx, user, input: { ...body, id: params.id } }),
        {
          params: PluginParams,
          body: ReviewInput,
          response: responses({ 200: Review }, ...SIGNED_IN, ...JSON_BODY, 404),
          detail: { summary: "Edit your review" },
        },
      )
      .delete(
        "/catalog/:id/reviews/me",
        async ({ user, params, set }) => {
          await deleteReview({ ctx, user, input: params });
          set.status = 204;
        },
        {
          params: PluginParams,
          response: responses({ 204: NoContent }, ...SIGNED_IN, 404, 422),
          detail: { summary: "Delete your review" },
        },
      )
      .post(
        "/catalog/:id/reviews/:review_id/report",
        async ({ user, params, body, set }) => {
          await reportReview({ ctx, user, input: { ...body, ...params } });
          set.status = 204;
        },
        {
          params: ReviewParams,
          body: ReportInput,
          // 403 `own_review`; 409 `already_reported`.
          response: responses({ 204: NoContent }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: { summary: "Report another user's review to the admins" },
        },
      )

      // Buying a paid plugin: its payment's webhook installs it.
      .post("/checkout", ({ user, body }) => startCheckout({ ctx, user, input: body }), {
        body: CheckoutInput,
        beforeHandle: sessionLimit,
        // 403 `tier_not_supported`; 409 `plugin_is_free` / `already_purchased` / `publisher_not_payable`;
        // 422 `permission_not_requested` or a redirect origin not allowed; 502/503: Stripe.
        response: responses({ 200: PluginCheckout }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409, 502),
        detail: { summary: "Start buying a paid plugin: a Stripe Checkout page; once paid, it is installed" },
      })

      // The caller's installs.
      .get("/installs", ({ user }) => listInstalls({ ctx, user, input: undefined }), {
        response: responses({ 200: InstallList }, ...SIGNED_IN),
        detail: { summary: "The caller's installed plugins, what each was granted, and available upgrades" },
      })
      .post(
        "/installs",
        async ({ user, body, set }) => {
          const install = await installPlugin({ ctx, user, input: body });
          set.status = 201;
          return install;
        },
        {
          body: InstallInput,
          // 402 `payment_required` (buy it: POST /checkout); 403 `tier_not_supported`; 409 `already_installed`;
          // 422 `permission_not_requested`.
          response: responses({ 201: Install }, ...SIGNED_IN, ...JSON_BODY, 402, 403, 404, 409),
          detail: { summary: "Install a plugin's live version, granting some or all of what it asks for" },
        },
      )
      .delete(
        "/installs/:plugin_id",
        async ({ user, params, set }) => {
          await uninstallPlugin({ ctx, user, input: params });
          set.status = 204;
        },
        {
          params: InstallParams,
          // 502/503: Stripe could not set a monthly plugin's subscription to end (nothing removed).
          response: responses({ 204: NoContent }, ...SIGNED_IN, 404, 422, 502),
          detail: { summary: "Uninstall a plugin (a monthly one's subscription ends with the paid period)" },
        },
      )
      .post(
        "/installs/:plugin_id/upgrade",
        ({ user, params, body }) => upgradeInstall({ ctx, user, input: { ...body, ...params } }),
        {
          params: InstallParams,
          body: UpgradeInput,
          // 409 `already_current`; 402, 403 and 422 as for an install.
          response: responses({ 200: Install }, ...SIGNED_IN, ...JSON_BODY, 402, 403, 404, 409),
          detail: { summary: "Move an install to the live version, accepting what it asks for" },
        },
      )

      // Admins (PLUGINS_ADMIN_USER_IDS); anyone else: 403 `admin_required`.
      .get("/admin/review-queue", ({ user, query }) => reviewQueue({ ctx, user, input: query }), {
        query: QueueQuery,
        response: responses({ 200: ReviewQueue }, ...SIGNED_IN, 403, 422),
        detail: { summary: "Admins: versions waiting for review, oldest first" },
      })
      .post(
        "/admin/plugins/:id/versions/:version/approve",
        ({ user, params }) => approveVersion({ ctx, user, input: params }),
        {
          params: VersionParams,
          // 409 `invalid_state`: the version is not in review.
          response: responses({ 200: PluginDetail }, ...SIGNED_IN, 400, 403, 404, 409, 422),
          detail: { summary: "Admins: publish a version in review (installs needing no new consent follow it)" },
        },
      )
      .post(
        "/admin/plugins/:id/versions/:version/reject",
        ({ user, params, body }) => rejectVersion({ ctx, user, input: { ...body, ...params } }),
        {
          params: VersionParams,
          body: ReasonInput,
          response: responses({ 200: PluginDetail }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: { summary: "Admins: reject a version in review, saying why" },
        },
      )
      .post(
        "/admin/plugins/:id/suspend",
        ({ user, params, body }) => suspendPlugin({ ctx, user, input: { ...body, ...params } }),
        {
          params: PluginParams,
          body: ReasonInput,
          // 409 `already_suspended`.
          response: responses({ 200: PluginDetail }, ...SIGNED_IN, ...JSON_BODY, 403, 404, 409),
          detail: { summary: "Admins: take a plugin off the marketplace and away from the agent (reversible)" },
        },
      )
      .post("/admin/plugins/:id/unsuspend", ({ user, params }) => unsuspendPlugin({ ctx, user, input: params }), {
        params: PluginParams,
        // 409 `not_suspended`.
        response: responses({ 200: PluginDetail }, ...SIGNED_IN, 400, 403, 404, 409, 422),
        detail: { summary: "Admins: lift a suspension" },
      })
      .get("/admin/reported-reviews", ({ user }) => reportedReviews({ ctx, user, input: undefined }), {
        response: responses({ 200: ReportedReviews }, ...SIGNED_IN, 403),
        detail: { summary: "Admins: reviews other users reported, most reported first" },
      })
      .delete(
        "/admin/reviews/:review_id",
        async ({ user, params, set }) => {
          await deleteReviewAsAdmin({ ctx, user, input: params });
          set.status = 204;
        },
        {
          params: AdminReviewParams,
          response: responses({ 204: NoContent }, ...SIGNED_IN, 403, 404, 422),
          detail: { summary: "Admins: remove a review" },
        },
      )
  );
}
