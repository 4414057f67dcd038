import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { AuthUser } from "../shared/auth/verifier";
import { conflict, notFound, ServiceError } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext, Tx } from "./context";
import { requireDeveloper } from "./developers";
import {
  canonicalJson,
  checkManifestAddresses,
  type PluginManifest,
  parseManifest,
  verifyManifestSignature,
} from "./manifest";
import type { ListingInput, PluginParams, PublishInput, VersionParams } from "./model";
import { compareVersions, latestVersion } from "./semver";
import { type PluginStatus, pluginRows, versions } from "./tables";
import { detailView, listingOf, type PluginRecord, pluginColumns, summaryView } from "./views";

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

/**
 * The manifest validated against the schema (422 `invalid_manifest`, naming each failing path), its
 * signature verified with the developer's key (422 `invalid_signature`), then, in production, where
 * its endpoint or package leads (422 `invalid_manifest` for a host inside a network; resolved only
 * for a signed manifest, so no one makes the service resolve names for them). The signature covers
 * the manifest exactly as sent: a valid manifest parses to itself (no defaults, no transforms).
 */
async function verifiedManifest(ctx: PluginsContext, publicKey: string, input: PublishInput) {
  const manifest = parseManifest(input.manifest, { allowHttpEndpoints: ctx.config.allowHttpEndpoints });
  if (!verifyManifestSignature(publicKey, input.manifest, input.signature)) {
    throw new ServiceError(
      "invalid_signature",
      422,
      "the signature is not your registered key's Ed25519 signature of the manifest's canonical JSON",
    );
  }
  if (ctx.config.strictEndpoints) await checkManifestAddresses(manifest, ctx.config.resolveHost);
  return { manifest, digest: sha256(canonicalJson(input.manifest)) };
}

const versionRow = (pluginId: string, manifest: PluginManifest, input: PublishInput, key: string, digest: string) => ({
  id: crypto.randomUUID(),
  pluginId,
  version: manifest.version,
  status: "draft" as const,
  manifest,
  signature: input.signature,
  signingKey: key,
  manifestSha256: digest,
});

/** The caller's own plugin, locked for the rest of the transaction; another developer's is 404. */
async function lockOwnPlugin(tx: Tx, user: AuthUser, id: string): Promise<PluginRecord> {
  const [plugin] = await tx
    .select(pluginColumns)
    .from(pluginRows)
    .where(and(eq(pluginRows.id, id), eq(pluginRows.developerId, user.userId)))
    .for("update");
  if (!plugin) throw notFound("plugin");
  return plugin;
}

async function ownPlugin(ctx: PluginsContext, user: AuthUser, id: string): Promise<PluginRecord> {
  const [plugin] = await ctx.db
    .select(pluginColumns)
    .from(pluginRows)
    .where(and(eq(pluginRows.id, id), eq(pluginRows.developerId, user.userId)));
  if (!plugin) throw notFound("plugin");
  return plugin;
}

/**
 * A plugin's state follows its versions: published while one is live, in review while one waits
 * and none is live, a draft otherwise. Called in every transaction that moves a version.
 */
export async function refreshStatus(tx: Tx, pluginId: string): Promise<PluginStatus> {
  const [row] = await tx
    .update(pluginRows)
    .set({
      status: sql`case
        when ${pluginRows.currentVersionId} is not null then 'published'
        when exists (select 1 from ${versions} where ${versions.pluginId} = ${pluginId} and ${versions.status} = 'in_review') then 'in_review'
        else 'draft' end`,
      updatedAt: sql`now()`,
    })
    .where(eq(pluginRows.id, pluginId))
    .returning({ status: pluginRows.status });
  return row?.status ?? "draft";
}

/**
 * A new plugin with its first version (a draft), from a signed manifest. The slug is the
 * plugin's for good: taken by another plugin, 409 `slug_taken`.
 */
export async function createPlugin({ ctx, user, input }: VerbArgs<PluginsContext, PublishInput>) {
  const developer = await requireDeveloper(ctx, user);
  const { manifest, digest } = await verifiedManifest(ctx, developer.publicKey, input);
  const pluginId = crypto.randomUUID();
  const plugin = await ctx.db.transaction(async (tx) => {
    const [created] = await tx
      .insert(pluginRows)
      .values({ id: pluginId, slug: manifest.slug, developerId: user.userId, ...listingOf(manifest) })
      .onConflictDoNothing({ target: pluginRows.slug })
      .returning(pluginColumns);
    if (!created) throw conflict("slug_taken", `the slug ${manifest.slug} is taken`);
    await tx.insert(versions).values(versionRow(pluginId, manifest, input, developer.publicKey, digest));
    return created;
  });
  ctx.versionEvents.inc({ event: "created" });
  ctx.logger.info({ plugin_id: pluginId, slug: manifest.slug, version: manifest.version }, "plugin created");
  return detailView(ctx.db, plugin, "owner");
}

/**
 * A new version of the caller's plugin. Versions are immutable and rise strictly: the same version
 * again is 409 `version_exists`, a lower one 409 `version_not_increasing`. The plugin row's lock
 * makes concurrent publishes take turns, so of two publishing one version exactly one wins.
 */
export async function addVersion({ ctx, user, input }: VerbArgs<PluginsContext, PublishInput & PluginParams>) {
  const developer = await requireDeveloper(ctx, user);
  const { manifest, digest } = await verifiedManifest(ctx, developer.publicKey, input);
  const plugin = await ctx.db.transaction(async (tx) => {
    const locked = await lockOwnPlugin(tx, user, input.id);
    if (manifest.slug !== locked.slug) {
      throw new ServiceError("slug_mismatch", 422, `this plugin's slug is ${locked.slug}; a slug never changes`, {}, [
        { path: "slug", message: `must be ${locked.slug}` },
      ]);
    }
    const existing = (
      await tx.select({ version: versions.version }).from(versions).where(eq(versions.pluginId, locked.id))
    ).map((row) => row.version);
    if (existing.includes(manifest.version)) {
      throw conflict("version_exists", `version ${manifest.version} is already published; versions never change`);
    }
    const latest = latestVersion(existing);
    if (latest && compareVersions(manifest.version, latest) <= 0) {
      throw conflict("version_not_increasing", `version ${manifest.version} does not come after ${latest}`);
    }
    const [inserted] = await tx
      .insert(versions)
      .values(versionRow(locked.id, manifest, input, developer.publicKey, digest))
      .onConflictDoNothing()
      .returning({ id: versions.id });
    if (!inserted) throw conflict("version_exists", `version ${manifest.version} is already published`);
    // Until a version is live, the listing shows the newest one.
    if (locked.currentVersionId !== null) return locked;
    const [updated] = await tx
      .update(pluginRows)
      .set({ ...listingOf(manifest), updatedAt: sql`now()` })
      .where(eq(pluginRows.id, locked.id))
      .returning(pluginColumns);
    return updated ?? locked;
  });
  ctx.versionEvents.inc({ event: "created" });
  ctx.logger.info({ plugin_id: plugin.id, version: manifest.version }, "plugin version created");
  return detailView(ctx.db, plugin, "owner");
}

/** A draft version goes to the admins' review queue; any other state is 409 `invalid_state`. */
export async function submitVersion({ ctx, user, input }: VerbArgs<PluginsContext, VersionParams>) {
  const plugin = await ctx.db.transaction(async (tx) => {
    await lockOwnPlugin(tx, user, input.id);
    const [row] = await tx
      .select({ id: versions.id, status: versions.status })
      .from(versions)
      .where(and(eq(versions.pluginId, input.id), eq(versions.version, input.version)));
    if (!row) throw notFound("version");
    if (row.status !== "draft") {
      throw conflict("invalid_state", `version ${input.version} is ${row.status}; only a draft can be submitted`);
    }
    await tx.update(versions).set({ status: "in_review", submittedAt: sql`now()` }).where(eq(versions.id, row.id));
    await refreshStatus(tx, input.id);
    const [updated] = await tx.select(pluginColumns).from(pluginRows).where(eq(pluginRows.id, input.id));
    return updated as PluginRecord;
  });
  ctx.versionEvents.inc({ event: "submitted" });
  return detailView(ctx.db, plugin, "owner");
}

/** The listing's own links (nothing signed): replaced as given, `null` clears one. */
export async function editListing({ ctx, user, input }: VerbArgs<PluginsContext, ListingInput & PluginParams>) {
  const [plugin] = await ctx.db
    .update(pluginRows)
    .set({ homepageUrl: input.homepage_url, supportUrl: input.support_url, updatedAt: sql`now()` })
    .where(and(eq(pluginRows.id, input.id), eq(pluginRows.developerId, user.userId)))
    .returning(pluginColumns);
  if (!plugin) throw notFound("plugin");
  return detailView(ctx.db, plugin, "owner");
}

/** The caller's plugins in every state, newest first. */
export async function listOwnPlugins({ ctx, user }: VerbArgs<PluginsContext>) {
  const plugins = await ctx.db
    .select(pluginColumns)
    .from(pluginRows)
    .where(eq(pluginRows.developerId, user.userId))
    .orderBy(desc(pluginRows.createdAt), desc(pluginRows.id));
  const currentIds = plugins.flatMap((plugin) => (plugin.currentVersionId ? [plugin.currentVersionId] : []));
  const current =
    currentIds.length > 0 ? await ctx.db.select().from(versions).where(inArray(versions.id, currentIds)) : [];
  return {
    items: plugins.map((plugin) =>
      summaryView(
        plugin,
        current.find((row) => row.id === plugin.currentVersionId),
      ),
    ),
  };
}

/** One of the caller's plugins with every version, review notes and any suspension. */
export async function getOwnPlugin({ ctx, user, input }: VerbArgs<PluginsContext, PluginParams>) {
  return detailView(ctx.db, await ownPlugin(ctx, user, input.id), "owner");
}
