import { z } from "zod";
import type { Platform } from "../platform";
import { eventLogFor } from "./for-platform";

/** Every service contributes one part to a user's data export, auth included. */
export const EXPORTING_SERVICES = ["auth", "chat", "agent", "billing", "storage", "plugins"] as const;
export type ExportingService = (typeof EXPORTING_SERVICES)[number];

/** A user asked for their data (auth is the producer); each service answers with an `ExportPartEvent`. */
export const ExportRequestedEvent = z.object({
  exportId: z.uuid(),
  userId: z.uuid(),
  requestedAt: z.number().int(),
});
export type ExportRequestedEvent = z.infer<typeof ExportRequestedEvent>;

/**
 * One service's part of an export: its data as JSON text, or why it could not give it (a part
 * larger than EXPORT_PART_MAX_BYTES). Auth stores it and assembles the archive once every part is in.
 */
export const ExportPartEvent = z.object({
  exportId: z.uuid(),
  userId: z.uuid(),
  service: z.enum(EXPORTING_SERVICES),
  /** The part as JSON text, exactly as the archive will hold it. */
  json: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type ExportPartEvent = z.infer<typeof ExportPartEvent>;

export async function publishExportRequested(platform: Platform, event: ExportRequestedEvent): Promise<void> {
  const payload = JSON.stringify(ExportRequestedEvent.parse(event));
  await eventLogFor(platform).append(platform.keys.exportRequestedStream, payload);
}

export async function publishExportPart(platform: Platform, event: ExportPartEvent): Promise<void> {
  await eventLogFor(platform).append(platform.keys.exportPartsStream, JSON.stringify(ExportPartEvent.parse(event)));
}
