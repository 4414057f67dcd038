import { z } from "zod";
import type { Platform } from "../platform";
import { Tier } from "../tiers";
import { eventLogFor } from "./for-platform";

/**
 * A user's tier changed (billing is the producer). Delivered durably to auth through a Redis Stream
 * consumer group; once auth has applied it, auth announces it on the `tier_changed:{user_id}`
 * channel for real-time listeners (the chat gateway tells the user's devices to refresh).
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
 * Appends the event to the durable stream. Throws if the write fails, so the caller (billing's
 * outbox) can retry.
 */
export async function publishTierChanged(platform: Platform, event: TierChangedEvent): Promise<void> {
  const payload = JSON.stringify(TierChangedEvent.parse(event));
  await eventLogFor(platform).append(platform.keys.tierChangedStream, payload);
}

/**
 * Announces an applied change on `tier_changed:{user_id}`, best effort. Sent by auth after the
 * change is committed, not by billing when it is produced: a device that refreshes the moment it
 * hears it must get the new tier, and a change waiting for auth (down, lagging) must not be
 * announced before it can be.
 */
export async function announceTierChanged(platform: Platform, event: TierChangedEvent): Promise<void> {
  await platform.bus.publish(platform.keys.tierChanged(event.userId), JSON.stringify(event)).catch(() => 0);
}
