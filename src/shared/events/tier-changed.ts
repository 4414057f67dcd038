import { z } from "zod";
import type { Platform } from "../platform";
import { Tier } from "../tiers";
import { eventLogFor } from "./for-platform";

/**
 * A user's tier changed (billing is the producer). Delivered durably to auth through a Redis Stream
 * consumer group, and announced on the seed's `tier_changed:{user_id}` channel for real-time listeners.
 */
export const TierChangedEvent = z.object({
  /** Unique per change; consumers are idempotent on it. */
  eventId: z.string().min(1),
  userId: z.string().min(1),
  tier: Tier,
  previousTier: Tier.optional(),
  /** Why, e.g. "checkout.session.completed", "customer.subscription.deleted". */
  reason: z.string(),
  /** When the change happened at the source (ms since epoch); newer wins. */
  occurredAt: z.number().int(),
});
export type TierChangedEvent = z.infer<typeof TierChangedEvent>;

/**
 * Appends the event to the durable stream, then announces it on pub/sub. Throws if the durable
 * write fails, so the caller (billing's outbox) can retry; the announcement is best effort.
 */
export async function publishTierChanged(platform: Platform, event: TierChangedEvent): Promise<void> {
  const payload = JSON.stringify(TierChangedEvent.parse(event));
  await eventLogFor(platform).append(platform.keys.tierChangedStream, payload);
  await platform.bus.publish(platform.keys.tierChanged(event.userId), payload).catch(() => 0);
}
