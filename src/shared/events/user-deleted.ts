import { z } from "zod";
import type { Platform } from "../platform";
import { eventLogFor } from "./for-platform";

/** The services that hold data of a user and erase it when the account is deleted; auth goes last. */
export const ERASING_SERVICES = ["chat", "agent", "billing", "storage", "plugins"] as const;
export type ErasingService = (typeof ERASING_SERVICES)[number];

/**
 * An account was deleted (auth is the producer). Every service consumes it with its own consumer
 * group and erases the user's data, idempotently: the event is published again while a service has
 * not reported (see `UserErasedEvent`), so a service that was down, or a stream Redis lost, still
 * gets it.
 */
export const UserDeletedEvent = z.object({
  userId: z.uuid(),
  /** When the deletion was asked for (ms since epoch). */
  deletedAt: z.number().int(),
});
export type UserDeletedEvent = z.infer<typeof UserDeletedEvent>;

/** A service has erased a deleted user's data (auth consumes it; the user row goes once all have). */
export const UserErasedEvent = z.object({
  userId: z.uuid(),
  service: z.enum(ERASING_SERVICES),
});
export type UserErasedEvent = z.infer<typeof UserErasedEvent>;

/** Appends to the durable stream; throws if the write fails, so the caller retries. */
export async function publishUserDeleted(platform: Platform, event: UserDeletedEvent): Promise<void> {
  await eventLogFor(platform).append(platform.keys.userDeletedStream, JSON.stringify(UserDeletedEvent.parse(event)));
}

export async function publishUserErased(platform: Platform, event: UserErasedEvent): Promise<void> {
  await eventLogFor(platform).append(platform.keys.userErasedStream, JSON.stringify(UserErasedEvent.parse(event)));
}
