import type { EventConsumer, EventLog } from "../shared/events/event-log";
import { announceTierChanged, TierChangedEvent } from "../shared/events/tier-changed";
import { applyTierChange } from "./apply-tier-change";
import type { AuthContext } from "./context";
import { endAccessTokens } from "./sessions";

/**
 * Auth's consumer of billing's tier changes (group "auth" on the durable stream). Events produced
 * while auth was down are waiting in the group and are applied when it starts. Each applied change
 * is then announced to real-time listeners, so a device told to refresh gets the new tier. A
 * malformed event is logged and acknowledged (retrying cannot fix it); a database error leaves it
 * pending for redelivery.
 */
export function startTierConsumer(ctx: AuthContext, log: EventLog): Promise<EventConsumer> {
  const applied = ctx.platform.metrics.counter("auth_tier_changes_total", "Tier-changed events handled", ["outcome"]);
  return log.consume({
    stream: ctx.platform.keys.tierChangedStream,
    group: "auth",
    consumer: ctx.platform.instanceId,
    handler: async (entry) => {
      let event: TierChangedEvent;
      try {
        event = TierChangedEvent.parse(JSON.parse(entry.payload));
      } catch {
        ctx.logger.error({ event_id: entry.id }, "malformed tier-changed event dropped");
        applied.inc({ outcome: "malformed" });
        return;
      }
      const { outcome, endedSessions } = await applyTierChange({ ctx, event });
      await endAccessTokens(ctx, endedSessions, "tier_downgrade");
      if (outcome === "applied") await announceTierChanged(ctx.platform, event);
      applied.inc({ outcome });
      ctx.logger.info({ user_id: event.userId, tier: event.tier, event_id: event.eventId, outcome }, "tier change");
    },
    onError: (error, entry) =>
      ctx.logger.warn({ err: String(error), event_id: entry?.id }, "tier change failed; will be redelivered"),
  });
}
