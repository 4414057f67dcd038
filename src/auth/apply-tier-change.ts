import { eq } from "drizzle-orm";
import type { TierChangedEvent } from "../shared/events/tier-changed";
import { tierRank } from "../shared/tiers";
import type { AuthContext } from "./context";
import { revokeSessions } from "./sessions";
import { users } from "./tables";

export type TierChangeOutcome = "applied" | "stale" | "unknown_user";

export interface TierChangeResult {
  outcome: TierChangeOutcome;
  /** Sessions a downgrade ended; their access tokens are revoked once the change is committed. */
  endedSessions: string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Applies a tier change from billing, idempotently: the user row is locked, an event not newer than
 * the last applied one (`tier_changed_at`) changes nothing, and a downgrade ends every session
 * (refresh tokens here, access tokens by the caller after the commit) so the client must sign in
 * again and gets a token with the lower tier.
 */
export async function applyTierChange({
  ctx,
  event,
}: {
  ctx: AuthContext;
  event: TierChangedEvent;
}): Promise<TierChangeResult> {
  const unchanged = (outcome: TierChangeOutcome): TierChangeResult => ({ outcome, endedSessions: [] });
  if (!UUID.test(event.userId)) return unchanged("unknown_user");
  return ctx.db.transaction(async (tx) => {
    // NO KEY UPDATE, not UPDATE: a refresh rotating one of this user's sessions holds that session and
    // takes KEY SHARE on this row for its new token's foreign key; FOR UPDATE would deadlock with it.
    const [user] = await tx.select().from(users).where(eq(users.id, event.userId)).for("no key update");
    if (!user) return unchanged("unknown_user");
    if (user.tierChangedAt !== null && event.occurredAt <= user.tierChangedAt) return unchanged("stale");
    await tx
      .update(users)
      .set({ tier: event.tier, tierChangedAt: event.occurredAt, updatedAt: new Date() })
      .where(eq(users.id, user.id));
    const downgrade = tierRank(event.tier) < tierRank(user.tier);
    const endedSessions = downgrade ? await revokeSessions(tx, { userId: user.id, reason: "tier_downgrade" }) : [];
    return { outcome: "applied", endedSessions };
  });
}
