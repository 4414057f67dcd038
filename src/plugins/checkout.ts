import { and, desc, eq, lt, sql } from "drizzle-orm";
import { conflict, forbidden, notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import type { CheckoutInput, PluginCheckout } from "./model";
import { paymentsDeps } from "./payment-account";
import { createPluginCheckout } from "./payments";
import { grantsWithin } from "./permissions";
import { allowedRedirect } from "./redirects";
import { checkoutGrants, developers, pluginRows, purchases, versions } from "./tables";
import { isOffered, pluginColumns } from "./views";

/** Checkout Sessions live 24 hours at most: grants kept for one older than this can no longer be used. */
const PENDING_GRANTS_TTL = "2 days";

/**
 * Starts buying a paid plugin's live version for the caller (the token's user; nobody else can be
 * named): a Stripe Checkout Session paying the publisher's account, the platform keeping
 * PLUGIN_PLATFORM_FEE_PERCENT. The grants the user gives are checked as an install's and kept with
 * the session; its payment's webhook installs the plugin with them. Refused: a plugin not in the
 * marketplace (404), one the user's tier may not use (403 `tier_not_supported`), a free one (409
 * `plugin_is_free`), one the user has an active purchase of (409 `already_purchased`), one whose
 * publisher Stripe does not let be paid (409 `publisher_not_payable`), a redirect URL of an origin
 * not allowed (422).
 */
export async function startCheckout({
  ctx,
  user,
  input,
}: VerbArgs<PluginsContext, CheckoutInput>): Promise<PluginCheckout> {
  const successUrl = allowedRedirect(ctx.config.redirectOrigins, "success_url", input.success_url);
  const cancelUrl = allowedRedirect(ctx.config.redirectOrigins, "cancel_url", input.cancel_url);
  const [row] = await ctx.db
    .select({ plugin: pluginColumns, live: versions, accountId: developers.stripeAccountId })
    .from(pluginRows)
    .innerJoin(developers, eq(developers.userId, pluginRows.developerId))
    .leftJoin(versions, eq(versions.id, pluginRows.currentVersionId))
    .where(eq(pluginRows.id, input.plugin_id));
  if (!row || !isOffered(row.plugin) || !row.live) throw notFound("plugin");
  const { plugin, live } = row;
  const { manifest } = live;
  if (!manifest.tiers.includes(user.tier)) {
    throw forbidden(
      "tier_not_supported",
      `this plugin is available on the ${manifest.tiers.join(", ")} tier(s), not on ${user.tier}`,
    );
  }
  if (manifest.pricing.model === "free") {
    throw conflict("plugin_is_free", "this plugin is free: install it (POST /api/v1/plugins/installs)");
  }
  const granted = grantsWithin(input.grants, manifest.permissions);
  const [latest] = await ctx.db
    .select({ id: purchases.id, status: purchases.status })
    .from(purchases)
    .where(and(eq(purchases.userId, user.userId), eq(purchases.pluginId, plugin.id)))
    .orderBy(sql`${purchases.status} = 'active' desc`, desc(purchases.createdAt))
    .limit(1);
  if (latest?.status === "active") {
    throw conflict(
      "already_purchased",
      "you have bought this plugin already; install it if it is not installed (POST /api/v1/plugins/installs)",
    );
  }
  if (!row.accountId) {
    throw conflict("publisher_not_payable", "the publisher of this plugin cannot accept payments yet; try again later");
  }
  const { pricing } = manifest;
  const checkout = await createPluginCheckout(paymentsDeps(ctx), {
    userId: user.userId,
    pluginId: plugin.id,
    version: live.version,
    pluginName: plugin.name,
    pricing,
    publisherAccountId: row.accountId,
    successUrl,
    cancelUrl,
    // A purchase since the last identical request (bought, then refunded or ended): a new session.
    dedupeScope: latest?.id ?? "none",
  });
  const grants = {
    userId: user.userId,
    pluginId: plugin.id,
    grantedDeviceTools: granted.deviceTools,
    grantedOrigins: granted.origins,
    grantedData: granted.data,
    tier: user.tier,
  };
  await ctx.db.transaction(async (tx) => {
    // Stripe hands the same session back for the same request within minutes: the latest grants win.
    await tx
      .insert(checkoutGrants)
      .values({ sessionId: checkout.sessionId, ...grants })
      .onConflictDoUpdate({
        target: checkoutGrants.sessionId,
        set: { ...grants, createdAt: sql`now()` },
        setWhere: eq(checkoutGrants.userId, user.userId),
      });
    await tx
      .delete(checkoutGrants)
      .where(
        and(
          eq(checkoutGrants.userId, user.userId),
          lt(checkoutGrants.createdAt, sql`now() - ${PENDING_GRANTS_TTL}::interval`),
        ),
      );
  });
  return {
    session_id: checkout.sessionId,
    url: checkout.url,
    pricing: { model: pricing.model, amount: pricing.amount, currency: pricing.currency },
    platform_fee_amount: checkout.platformFeeAmount,
    platform_fee_percent: checkout.platformFeePercent,
  };
}
