import { sql } from "drizzle-orm";
import { rowsOf } from "../shared/db";
import { ServiceError } from "../shared/errors";
import type { Tier } from "../shared/tiers";
import { limitsFor } from "../shared/tiers";
import type { Tx } from "./context";

export const quotaExceeded = (what: string) =>
  new ServiceError("quota_exceeded", 409, `storage quota exceeded: ${what}`);

/**
 * Reserves `size` bytes and one object for the user, or throws `quota_exceeded`. One statement:
 * the upsert takes the user's usage row lock and adds only while the sum stays within the tier's
 * limits, so two uploads racing for the last bytes cannot both get them.
 */
export async function reserve(tx: Tx, userId: string, tier: Tier, size: number): Promise<void> {
  const limits = limitsFor(tier);
  if (size > limits.storageBytes) throw quotaExceeded(`${size} bytes is more than the tier's ${limits.storageBytes}`);
  const result = await tx.execute(sql`
    insert into storage.usage as u (user_id, bytes, objects, tier) values (${userId}, ${size}, 1, ${tier})
    on conflict (user_id) do update
      set bytes = u.bytes + excluded.bytes, objects = u.objects + 1, tier = excluded.tier, updated_at = now()
      where u.bytes + excluded.bytes <= ${limits.storageBytes} and u.objects + 1 <= ${limits.storageObjects}
    returning u.bytes`);
  if (rowsOf(result).length === 0) {
    throw quotaExceeded(`the tier allows ${limits.storageBytes} bytes in ${limits.storageObjects} objects`);
  }
}

/** Gives back what an object reserved; in the transaction that removes the object's row. */
export async function release(tx: Tx, userId: string, size: number): Promise<void> {
  await tx.execute(sql`
    update storage.usage set bytes = greatest(bytes - ${size}, 0), objects = greatest(objects - 1, 0), updated_at = now()
    where user_id = ${userId}`);
}
