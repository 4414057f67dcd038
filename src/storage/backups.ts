import { and, desc, eq } from "drizzle-orm";
import { limitsFor, type Tier } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import type { StorageContext } from "./context";
import type { BackupListQuery, CreateBackupInput, Upload } from "./model";
import { listStored, removeObject } from "./objects";
import { objects } from "./tables";
import { startUpload } from "./uploads";

/**
 * POST /backups: an encrypted backup of the app's database, uploaded like a file (the same
 * presigned single or multipart flow, quota and verification). The server only ever stores the
 * ciphertext: `encryptBackup` in the SDK encrypts with the user's data key before upload.
 */
export function createBackup({
  ctx,
  user,
  input,
  origin,
}: VerbArgs<StorageContext, CreateBackupInput> & { origin: string }): Promise<Upload> {
  const createdAt = new Date(input.created_at);
  return startUpload(ctx, user, origin, {
    kind: "backup",
    name: `backup-${input.device_id}-${createdAt.toISOString()}.adb`,
    size: input.size,
    sha256: input.sha256,
    contentType: "application/octet-stream",
    backup: { deviceId: input.device_id, createdAt, headerVersion: input.header_version },
  });
}

/** GET /backups: the user's backups, newest upload first, optionally of one device. */
export const listBackups = ({ ctx, user, input }: VerbArgs<StorageContext, BackupListQuery>) =>
  listStored(ctx, user.userId, "backup", { ...input, deviceId: input.device_id });

export interface DatedBackup {
  id: string;
  createdAt: Date;
}

/**
 * Which backups of one device the retention keeps: the newest of each of the last `daily` days
 * (UTC) that have a backup, and the newest of each of the last `weekly` ISO weeks that have one.
 * Everything else is pruned.
 */
export function retained(backups: DatedBackup[], daily: number, weekly: number): Set<string> {
  const newestFirst = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const keep = new Set<string>();
  const keepNewestPer = (period: (at: Date) => string, count: number) => {
    const seen = new Set<string>();
    for (const backup of newestFirst) {
      const key = period(backup.createdAt);
      if (seen.has(key)) continue;
      if (seen.size >= count) break;
      seen.add(key);
      keep.add(backup.id);
    }
  };
  keepNewestPer((at) => at.toISOString().slice(0, 10), daily);
  keepNewestPer(isoWeek, weekly);
  return keep;
}

/** `2026-W48`: the ISO 8601 week of a UTC instant (weeks start on Monday; week 1 holds the first Thursday). */
export function isoWeek(at: Date): string {
  const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

/** Prunes one user's backups past the tier's retention, device by device; returns how many went. */
export async function pruneBackups(ctx: StorageContext, userId: string, tier: Tier): Promise<number> {
  const limits = limitsFor(tier);
  const rows = await ctx.db
    .select()
    .from(objects)
    .where(and(eq(objects.userId, userId), eq(objects.kind, "backup"), eq(objects.status, "ready")))
    .orderBy(desc(objects.backupCreatedAt));
  const byDevice = new Map<string, typeof rows>();
  for (const row of rows) byDevice.set(row.deviceId ?? "", [...(byDevice.get(row.deviceId ?? "") ?? []), row]);
  let pruned = 0;
  for (const backups of byDevice.values()) {
    const keep = retained(
      backups.map((row) => ({ id: row.id, createdAt: row.backupCreatedAt ?? row.createdAt })),
      limits.backupDaily,
      limits.backupWeekly,
    );
    for (const row of backups) {
      if (keep.has(row.id)) continue;
      await removeObject(ctx, row);
      pruned++;
    }
  }
  return pruned;
}
