import { eq } from "drizzle-orm";
import type { Database } from "../shared/db";
import type { PluginManifest } from "./manifest";
import type { PluginDetail, PluginSummary, PluginVersion } from "./model";
import { toWire } from "./permissions";
import { compareVersions } from "./semver";
import { pluginRows, versions } from "./tables";

export type PluginRow = typeof pluginRows.$inferSelect;
export type VersionRow = typeof versions.$inferSelect;

/** Every column of a plugin but the full-text document, which nothing reads back. */
export const pluginColumns = {
  id: pluginRows.id,
  slug: pluginRows.slug,
  developerId: pluginRows.developerId,
  status: pluginRows.status,
  currentVersionId: pluginRows.currentVersionId,
  name: pluginRows.name,
  description: pluginRows.description,
  icon: pluginRows.icon,
  categories: pluginRows.categories,
  publisherName: pluginRows.publisherName,
  publisherUrl: pluginRows.publisherUrl,
  homepageUrl: pluginRows.homepageUrl,
  supportUrl: pluginRows.supportUrl,
  installCount: pluginRows.installCount,
  ratingSum: pluginRows.ratingSum,
  ratingCount: pluginRows.ratingCount,
  ratingAvg: pluginRows.ratingAvg,
  suspendedAt: pluginRows.suspendedAt,
  suspendedReason: pluginRows.suspendedReason,
  createdAt: pluginRows.createdAt,
  updatedAt: pluginRows.updatedAt,
};
export type PluginRecord = Omit<PluginRow, "search">;

/** Shown in the marketplace and installable: published, not suspended. */
export const isOffered = (plugin: Pick<PluginRecord, "status" | "suspendedAt">) =>
  plugin.status === "published" && plugin.suspendedAt === null;

/** The listing fields a manifest sets (name, description, icon, categories, publisher). */
export const listingOf = (manifest: PluginManifest) => ({
  name: manifest.name,
  description: manifest.description,
  icon: manifest.icon,
  categories: [...manifest.categories],
  publisherName: manifest.publisher.name,
  publisherUrl: manifest.publisher.url ?? null,
});

export const pricingOf = (manifest: PluginManifest) =>
  manifest.pricing.model === "free"
    ? { model: "free" as const }
    : { model: manifest.pricing.model, amount: manifest.pricing.amount, currency: manifest.pricing.currency };

export function versionView(row: VersionRow, options: { withReview: boolean }): PluginVersion {
  const { manifest } = row;
  return {
    version: row.version,
    status: row.status,
    changelog: manifest.changelog,
    runtime:
      manifest.runtime.type === "remote"
        ? { type: "remote", endpoint: manifest.runtime.endpoint }
        : { type: "local", package: { ...manifest.runtime.package } },
    tools: manifest.tools.map((tool) => ({ name: tool.name, description: tool.description })),
    permissions: toWire(manifest.permissions),
    pricing: pricingOf(manifest),
    tiers: [...manifest.tiers],
    created_at: row.createdAt.toISOString(),
    submitted_at: row.submittedAt?.toISOString() ?? null,
    reviewed_at: row.reviewedAt?.toISOString() ?? null,
    review_note: options.withReview ? row.reviewNote : null,
    manifest: manifest as unknown as Record<string, unknown>,
    signature: row.signature,
    signing_key: row.signingKey,
  };
}

export function summaryView(plugin: PluginRecord, current: VersionRow | undefined | null): PluginSummary {
  return {
    id: plugin.id,
    slug: plugin.slug,
    name: plugin.name,
    description: plugin.description,
    icon: plugin.icon,
    categories: plugin.categories,
    publisher: { name: plugin.publisherName, url: plugin.publisherUrl },
    status: plugin.status,
    suspended: plugin.suspendedAt !== null,
    installs: plugin.installCount,
    rating: { average: plugin.ratingAvg, count: plugin.ratingCount },
    version: current?.version ?? null,
    pricing: current ? pricingOf(current.manifest) : null,
    runtime_type: current?.manifest.runtime.type ?? null,
  };
}

/**
 * A plugin's page. `audience` decides what it shows: the marketplace sees the published versions
 * only; the developer (and admins) every version, with review notes and the suspension.
 */
export async function detailView(
  db: Database,
  plugin: PluginRecord,
  audience: "public" | "owner",
): Promise<PluginDetail> {
  const rows = await db.select().from(versions).where(eq(versions.pluginId, plugin.id));
  const shown = rows
    .filter((row) => audience === "owner" || row.status === "published")
    .sort((a, b) => compareVersions(b.version, a.version));
  const current = rows.find((row) => row.id === plugin.currentVersionId);
  return {
    ...summaryView(plugin, current),
    homepage_url: plugin.homepageUrl,
    support_url: plugin.supportUrl,
    suspension:
      audience === "owner" && plugin.suspendedAt
        ? { at: plugin.suspendedAt.toISOString(), reason: plugin.suspendedReason ?? "" }
        : null,
    created_at: plugin.createdAt.toISOString(),
    versions: shown.map((row) => versionView(row, { withReview: audience === "owner" })),
  };
}
