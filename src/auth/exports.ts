import { and, desc, eq, sql } from "drizzle-orm";
import { conflict, notFound, ServiceError } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import { isDeleted, lockAccount } from "./account-state";
import type { AuthContext } from "./context";
import type { DataExport, ExportParams } from "./model";
import { dataExports, exportParts, users } from "./tables";

/** The class of the advisory lock that keeps one export pending per user. */
const EXPORT_LOCK_CLASS = 0x6578_7074; // "expt"

type ExportRow = Pick<
  typeof dataExports.$inferSelect,
  "id" | "status" | "requestedAt" | "readyAt" | "expiresAt" | "userId"
>;

const columns = {
  id: dataExports.id,
  userId: dataExports.userId,
  status: dataExports.status,
  requestedAt: dataExports.requestedAt,
  readyAt: dataExports.readyAt,
  expiresAt: dataExports.expiresAt,
};

/** A ready export past its time is expired even before the sweeper has deleted its bytes. */
const statusOf = (row: ExportRow): DataExport["status"] =>
  row.status === "ready" && row.expiresAt && row.expiresAt <= new Date() ? "expired" : row.status;

/**
 * Starts an export of everything the services hold of the caller (GDPR art. 15 and 20), or gives
 * back the one already pending: one at a time per user, decided under a per-user lock. The
 * `export_requested` event goes out from the committed row (lifecycle.ts), so a crash right after
 * the commit loses nothing. The account's lock is taken shared, so an export cannot start for an
 * account whose deletion is committing.
 */
export async function requestExport({ ctx, user }: VerbArgs<AuthContext>): Promise<DataExport> {
  const row = await ctx.db.transaction(async (tx) => {
    await lockAccount(tx, user.userId, "shared");
    const [owner] = await tx.select({ id: users.id }).from(users).where(eq(users.id, user.userId));
    if (!owner || (await isDeleted(tx, user.userId))) throw notFound("user");
    await tx.execute(sql`select pg_advisory_xact_lock(${EXPORT_LOCK_CLASS}, hashtext(${user.userId}))`);
    const [pending] = await tx
      .select(columns)
      .from(dataExports)
      .where(and(eq(dataExports.userId, user.userId), eq(dataExports.status, "pending")))
      .orderBy(desc(dataExports.requestedAt))
      .limit(1);
    if (pending) return pending;
    const [created] = await tx.insert(dataExports).values({ userId: user.userId }).returning(columns);
    if (!created) throw new Error("export insert returned no row");
    return created;
  });
  ctx.wakeLifecycle();
  return view(ctx, row);
}

export async function getExport({ ctx, user, input }: VerbArgs<AuthContext, ExportParams>): Promise<DataExport> {
  return view(ctx, await findExport(ctx, user.userId, input.id));
}

/** The archive of a ready export, with what the response needs to name it. */
export async function downloadExport({ ctx, user, input }: VerbArgs<AuthContext, ExportParams>) {
  const row = await findExport(ctx, user.userId, input.id);
  const status = statusOf(row);
  if (status === "expired") throw new ServiceError("export_expired", 410, "the export has expired; ask for a new one");
  if (status === "failed") throw conflict("export_failed", "the export failed; ask for a new one");
  if (status === "pending") throw conflict("export_not_ready", "the export is still being prepared");
  const [stored] = await ctx.db
    .select({ archive: dataExports.archive, sha256: dataExports.archiveSha256 })
    .from(dataExports)
    .where(eq(dataExports.id, row.id));
  if (!stored?.archive) throw new ServiceError("export_expired", 410, "the export has expired; ask for a new one");
  const day = (row.readyAt ?? row.requestedAt).toISOString().slice(0, 10);
  // The driver hands bytea back as a Buffer over its own ArrayBuffer.
  return {
    archive: stored.archive as Uint8Array<ArrayBuffer>,
    sha256: stored.sha256 ?? "",
    filename: `adiuva-export-${day}.tar.gz`,
  };
}

async function findExport(ctx: AuthContext, userId: string, id: string): Promise<ExportRow> {
  const [row] = await ctx.db
    .select(columns)
    .from(dataExports)
    .where(and(eq(dataExports.id, id), eq(dataExports.userId, userId)));
  if (!row) throw notFound("export");
  return row;
}

async function view(ctx: AuthContext, row: ExportRow): Promise<DataExport> {
  const status = statusOf(row);
  return {
    id: row.id,
    status,
    requested_at: row.requestedAt.toISOString(),
    ready_at: row.readyAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
    error: status === "failed" ? await failureOf(ctx, row.id) : null,
  };
}

/** The error a service sent with its part, else the relay's timeout. */
async function failureOf(ctx: AuthContext, exportId: string): Promise<DataExport["error"]> {
  const parts = await ctx.db
    .select({ data: exportParts.data })
    .from(exportParts)
    .where(and(eq(exportParts.exportId, exportId), sql`jsonb_exists(${exportParts.data}, 'error')`));
  const error = (parts[0]?.data as { error?: { code: string; message: string } } | undefined)?.error;
  return error ?? { code: "export_timed_out", message: "not every service sent its part in time" };
}
