import { eq } from "drizzle-orm";
import type { TierChangedEvent } from "../shared/events/tier-changed";
import { tierRank } from "../shared/tiers";
import type { AuthContext } from "./context";
import { revokeSessions } from "./sessions";
import { users } from "./tables";

export type TierChangeOutcome = "applied" | "stale" | "unknown_user";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Applies a tier change from billing, idempotently: the user row is locked, an event not newer than
 * the last applied one (`tier_changed_at`) changes nothing, and a downgrade revokes every refresh
 * token so the client must sign in again and gets a token with the lower tier.
 */
export async function applyTierChange({
  ctx,
  event,
}: {
  ctx: AuthContext;
  event: TierChangedEvent;
}): Promise<TierChangeOutcome> {
  if (!UUID.test(event.userId)) return "unknown_user";
  return ctx.db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, event.userId)).for("update");
    if (!user) return "unknown_user";
    if (user.tierChangedAt !== null && event.occurredAt <= user.tierChangedAt) return "stale";
    await tx
      .update(users)
      .set({ tier: event.tier, tierChangedAt: event.occurredAt, updatedAt: new Date() })
      .where(eq(users.id, user.id));
    if (tierRank(event.tier) < tierRank(user.tier)) {
      await revokeSessions(tx, { userId: user.id, reason: "tier_downgrade" });
    }
    return "applied";
  });
}
