import { and, asc, desc, eq, isNotNull, notExists, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import type { AuthUser } from "../shared/auth/verifier";
import { conflict, forbidden, notFound, ServiceError } from "../shared/errors";
import type { Tier } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import { announce } from "./announce";
import type { PluginsContext, Tx } from "./context";
import type { PluginManifest } from "./manifest";
import type { Install, InstallInput, InstallParams, InstallUnavailableReason, UpgradeInput } from "./model";
import { cancelPluginSubscription, keepPluginSubscription } from "./payments";
import { grantsWithin, isEmpty, newlyAsked, type PermissionSet, toWire } from "./permissions";
import { installs, pluginRows, purchases, versions } from "./tables";
import { isOffered, type PluginRecord, pluginColumns, type VersionRow } from "./views";

type InstallRow = typeof installs.$inferSelect;

export const paymentRequired = () =>
  new ServiceError(
    "payment_required",
    402,
    "this plugin is paid: buy it first (POST /api/v1/plugins/checkout), which installs it once paid",
  );

const grantsOf = (row: InstallRow): PermissionSet => ({
  deviceTools: row.grantedDeviceTools,
  origins: row.grantedOrigins,
  data: row.grantedData,
});

/**
 * Why the agent is not offered an install now, or undefined when it is: an offered plugin, whose
 * installed version is for the user's current tier (checked on every lookup, not only when
 * installing: a user who moved to another tier keeps the install, unused), free or paid for.
 */
export function unavailableReason(
  plugin: Pick<PluginRecord, "status" | "suspendedAt">,
  manifest: PluginManifest,
  row: Pick<InstallRow, "entitlementId">,
  tier: Tier,
): InstallUnavailableReason | undefined {
  if (plugin.suspendedAt !== null) {
    return { code: "suspended", message: "the plugin is suspended by the marketplace's admins" };
  }
  if (!isOffered(plugin)) return { code: "unpublished", message: "the plugin has no published version" };
  if (!manifest.tiers.includes(tier)) {
    return {
      code: "tier_not_supported",
      message: `the installed version is for the ${manifest.tiers.join(", ")} tier(s), not for ${tier}`,
    };
  }
  if (manifest.pricing.model !== "free" && row.entitlementId === null) {
    return { code: "payment_required", message: "the plugin is paid and no active purchase pays for it" };
  }
  return undefined;
}

/** Whether the agent is offered it (see `unavailableReason`). */
export const isUsable = (
  plugin: Pick<PluginRecord, "status" | "suspendedAt">,
  manifest: PluginManifest,
  row: Pick<InstallRow, "entitlementId">,
  tier: Tier,
) => unavailableReason(plugin, manifest, row, tier) === undefined;

/**
 * The plugin with its live version, the plugin row held `FOR KEY SHARE` until the transaction
 * ends: installs do not wait for each other, but an approval (which locks the row to move installs
 * to a new version) waits for them, and they for it. Not offered: 404.
 */
async function offeredForInstall(tx: Tx, pluginId: string): Promise<{ plugin: PluginRecord; live: VersionRow }> {
  const [plugin] = await tx.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, pluginId)).for("key share");
  if (!plugin || !isOffered(plugin) || !plugin.currentVersionId) throw notFound("plugin");
  const [live] = await tx.select().from(versions).where(eq(versions.id, plugin.currentVersionId));
  if (!live) throw notFound("plugin");
  return { plugin, live };
}

/** The checks a version's terms make of the user: its tiers (403 `tier_not_supported`) and its price (402). */
function checkTerms(user: AuthUser, manifest: PluginManifest, entitlementId: string | null): void {
  if (!manifest.tiers.includes(user.tier)) {
    throw forbidden(
      "tier_not_supported",
      `this plugin is available on the ${manifest.tiers.join(", ")} tier(s), not on ${user.tier}`,
    );
  }
  // A paid plugin needs an active purchase to pay for the install.
  if (manifest.pricing.model !== "free" && entitlementId === null) throw paymentRequired();
}

/** The install as its user sees it, `available` judged for the tier of the caller's token. */
function installView(
  row: InstallRow,
  plugin: PluginRecord,
  installed: VersionRow,
  live: VersionRow | null,
  tier: Tier,
): Install {
  const unavailable = unavailableReason(plugin, installed.manifest, row, tier);
  const upgrade =
    live && live.id !== installed.id
      ? (() => {
          const added = newlyAsked(installed.manifest.permissions, live.manifest.permissions);
          return {
            version: live.version,
            needs_consent: !isEmpty(added),
            permissions: toWire(live.manifest.permissions),
            new_permissions: toWire(added),
          };
        })()
      : null;
  return {
    plugin_id: plugin.id,
    slug: plugin.slug,
    name: plugin.name,
    icon: plugin.icon,
    version: installed.version,
    runtime_type: installed.manifest.runtime.type,
    grants: toWire(grantsOf(row)),
    available: unavailable === undefined,
    unavailable_reason: unavailable ?? null,
    installed_at: row.installedAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    upgrade,
  };
}

/**
 * The user's active purchase of the plugin, held `FOR SHARE` until the transaction ends: a refund
 * or a subscription's end (which lock it to withdraw it) waits for the install that attaches it, and
 * then finds that install. Taken after the plugin row, before the install's, as the webhook does.
 */
async function heldPurchase(tx: Tx, userId: string, pluginId: string): Promise<string | null> {
  const [row] = await tx
    .select({ id: purchases.id })
    .from(purchases)
    .where(and(eq(purchases.userId, userId), eq(purchases.pluginId, pluginId), eq(purchases.status, "active")))
    .orderBy(asc(purchases.createdAt))
    .limit(1)
    .for("share");
  return row?.id ?? null;
}

/**
 * Reinstalling a monthly plugin uninstalled before its paid period ended: the purchase the install
 * will attach (the oldest active one, as `heldPurchase` picks) has its subscription set to end, so
 * Stripe is asked first to renew it again, and access does not stop at the period's end. Stripe
 * unreachable: 503 and nothing is installed. The plugin and the user's tier are checked first, as
 * the install checks them, so no subscription is kept for an install that is refused.
 */
async function keepCancelledSubscription(ctx: PluginsContext, user: AuthUser, pluginId: string): Promise<void> {
  const [held] = await ctx.db
    .select({
      id: purchases.id,
      model: purchases.model,
      subscriptionId: purchases.subscriptionId,
      cancelAtPeriodEnd: purchases.cancelAtPeriodEnd,
    })
    .from(purchases)
    .where(
      and(
        eq(purchases.userId, user.userId),
        eq(purchases.pluginId, pluginId),
        eq(purchases.status, "active"),
        // Installed already: the install answers 409, nothing to keep.
        notExists(
          ctx.db
            .select({ id: installs.id })
            .from(installs)
            .where(and(eq(installs.userId, user.userId), eq(installs.pluginId, pluginId))),
        ),
      ),
    )
    .orderBy(asc(purchases.createdAt))
    .limit(1);
  if (held?.model !== "monthly" || !held.cancelAtPeriodEnd || !held.subscriptionId) return;
  const { live } = await ctx.db.transaction((tx) => offeredForInstall(tx, pluginId));
  checkTerms(user, live.manifest, held.id);
  // Free since: the install needs no purchase, and the subscription ends as the user asked.
  if (live.manifest.pricing.model === "free") return;
  const kept = await keepPluginSubscription({ config: ctx.payments, logger: ctx.logger }, held.subscriptionId);
  // Ended in Stripe meanwhile: its deletion event ends the purchase; the flag stays as it is.
  if (kept === "ended") return;
  await ctx.db
    .update(purchases)
    .set({ cancelAtPeriodEnd: false, updatedAt: sql`now()` })
    .where(and(eq(purchases.id, held.id), eq(purchases.cancelAtPeriodEnd, true)));
}

/**
 * Installs the live version with what the user grants of what it asks for (recorded exactly). One
 * install per user and plugin (the unique index; 409 `already_installed`); the install count moves
 * in the same transaction, so it stays exact under any concurrency. A paid plugin installs with the
 * user's active purchase (bought earlier, uninstalled since); without one, 402 `payment_required`.
 * A monthly one uninstalled before its period ended renews again (`keepCancelledSubscription`).
 */
export async function installPlugin({ ctx, user, input }: VerbArgs<PluginsContext, InstallInput>): Promise<Install> {
  await keepCancelledSubscription(ctx, user, input.plugin_id);
  const view = await ctx.db.transaction(async (tx) => {
    const { plugin, live } = await offeredForInstall(tx, input.plugin_id);
    const entitlementId =
      live.manifest.pricing.model === "free" ? null : await heldPurchase(tx, user.userId, plugin.id);
    checkTerms(user, live.manifest, entitlementId);
    const granted = grantsWithin(input.grants, live.manifest.permissions);
    const [row] = await tx
      .insert(installs)
      .values({
        id: crypto.randomUUID(),
        userId: user.userId,
        pluginId: plugin.id,
        versionId: live.id,
        grantedDeviceTools: granted.deviceTools,
        grantedOrigins: granted.origins,
        grantedData: granted.data,
        tier: user.tier,
        entitlementId,
      })
      .onConflictDoNothing()
      .returning();
    if (!row) throw conflict("already_installed", "the plugin is already installed");
    await tx
      .update(pluginRows)
      .set({ installCount: sql`${pluginRows.installCount} + 1` })
      .where(eq(pluginRows.id, plugin.id));
    return installView(row, { ...plugin, installCount: plugin.installCount + 1 }, live, live, user.tier);
  });
  ctx.installChanges.inc({ action: "installed" });
  await announce(ctx, [{ userId: user.userId, pluginId: view.plugin_id, reason: "installed" }]);
  return view;
}

/**
 * A monthly plugin's subscription paying for the install, when it still runs and is not set to end:
 * what uninstalling it cancels at the period's end.
 */
async function runningSubscription(ctx: PluginsContext, userId: string, pluginId: string) {
  const [row] = await ctx.db
    .select({ id: purchases.id, subscriptionId: purchases.subscriptionId })
    .from(installs)
    .innerJoin(purchases, eq(purchases.id, installs.entitlementId))
    .where(
      and(
        eq(installs.userId, userId),
        eq(installs.pluginId, pluginId),
        eq(purchases.model, "monthly"),
        eq(purchases.status, "active"),
        eq(purchases.cancelAtPeriodEnd, false),
        isNotNull(purchases.subscriptionId),
      ),
    );
  return row?.subscriptionId ? { purchaseId: row.id, subscriptionId: row.subscriptionId } : undefined;
}

/**
 * Removes the install (also of a suspended plugin); the count moves with it. A monthly plugin's
 * subscription is first set to end with the paid period (Stripe unreachable: 503 and nothing is
 * removed, so the user is never left paying for what they removed); the purchase stays active
 * until then, so reinstalling meanwhile needs no new payment and renews it again.
 */
export async function uninstallPlugin({ ctx, user, input }: VerbArgs<PluginsContext, InstallParams>): Promise<void> {
  const subscription = await runningSubscription(ctx, user.userId, input.plugin_id);
  if (subscription) {
    await cancelPluginSubscription(
      { config: ctx.payments, logger: ctx.logger },
      subscription.subscriptionId,
      "period_end",
    );
  }
  await ctx.db.transaction(async (tx) => {
    // The plugin row before the install's, as an approval takes them (else each waits for the other).
    await tx.select({ id: pluginRows.id }).from(pluginRows).where(eq(pluginRows.id, input.plugin_id)).for("key share");
    if (subscription) {
      // The purchase before the install, as the payment webhook takes them.
      await tx
        .update(purchases)
        .set({ cancelAtPeriodEnd: true, updatedAt: sql`now()` })
        .where(eq(purchases.id, subscription.purchaseId));
    }
    const [removed] = await tx
      .delete(installs)
      .where(and(eq(installs.userId, user.userId), eq(installs.pluginId, input.plugin_id)))
      .returning({ id: installs.id });
    if (!removed) throw notFound("install");
    await tx
      .update(pluginRows)
      .set({ installCount: sql`${pluginRows.installCount} - 1` })
      .where(eq(pluginRows.id, input.plugin_id));
  });
  ctx.installChanges.inc({ action: "uninstalled" });
  await announce(ctx, [{ userId: user.userId, pluginId: input.plugin_id, reason: "uninstalled" }]);
}

/**
 * Moves the user's install to the live version with the grants the user now gives: how a user
 * accepts a version that asks for more than the installed one did. 409 `already_current` when
 * it is on the live version.
 */
export async function upgradeInstall({
  ctx,
  user,
  input,
}: VerbArgs<PluginsContext, InstallParams & UpgradeInput>): Promise<Install> {
  const view = await ctx.db.transaction(async (tx) => {
    // The plugin row first, then the install's: the order an approval takes them in.
    const { plugin, live } = await offeredForInstall(tx, input.plugin_id);
    const [current] = await tx
      .select()
      .from(installs)
      .where(and(eq(installs.userId, user.userId), eq(installs.pluginId, input.plugin_id)))
      .for("update");
    if (!current) throw notFound("install");
    if (current.versionId === live.id) throw conflict("already_current", `the install is on ${live.version} already`);
    checkTerms(user, live.manifest, current.entitlementId);
    const granted = grantsWithin(input.grants, live.manifest.permissions);
    const [row] = await tx
      .update(installs)
      .set({
        versionId: live.id,
        grantedDeviceTools: granted.deviceTools,
        grantedOrigins: granted.origins,
        grantedData: granted.data,
        tier: user.tier,
        updatedAt: sql`now()`,
      })
      .where(eq(installs.id, current.id))
      .returning();
    return installView(row as InstallRow, plugin, live, live, user.tier);
  });
  ctx.installChanges.inc({ action: "upgraded" });
  await announce(ctx, [{ userId: user.userId, pluginId: view.plugin_id, reason: "upgraded" }]);
  return view;
}

const liveVersions = alias(versions, "live");

/** The caller's installs, newest first, each with the newer live version it may move to. */
export async function listInstalls({ ctx, user }: VerbArgs<PluginsContext>) {
  const rows = await ctx.db
    .select({ install: installs, plugin: pluginColumns, installed: versions, live: liveVersions })
    .from(installs)
    .innerJoin(pluginRows, eq(pluginRows.id, installs.pluginId))
    .innerJoin(versions, eq(versions.id, installs.versionId))
    .leftJoin(liveVersions, eq(liveVersions.id, pluginRows.currentVersionId))
    .where(eq(installs.userId, user.userId))
    .orderBy(desc(installs.installedAt), desc(installs.id));
  return { items: rows.map((row) => installView(row.install, row.plugin, row.installed, row.live, user.tier)) };
}
