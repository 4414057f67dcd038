import type { EventConsumer } from "./events/event-log";
import { eventLogFor } from "./events/for-platform";
import { type ErasingService, publishUserErased, UserDeletedEvent } from "./events/user-deleted";
import { type ExportingService, ExportRequestedEvent, publishExportPart } from "./events/user-export";
import type { Logger } from "./logger";
import type { Platform } from "./platform";

/** What one service does with a user's data: each service's `user-data.ts` provides it. */
export interface UserDataHandlers {
  service: ExportingService;
  /** Erases every row (and point, and Stripe object) of the user; idempotent; throws to be redelivered. */
  erase?: (userId: string) => Promise<void>;
  /** The user's data as a JSON-serialisable value; throws to be redelivered. */
  export: (userId: string) => Promise<unknown>;
}

export interface UserDataConsumers {
  stop(): Promise<void>;
  /** Events delivered to this service's groups and not handled yet (failing or in progress). */
  pending(): Promise<number>;
}

/**
 * Consumes the account-lifecycle streams for one service, each with the service's own consumer
 * group (so a service that was down reads what it missed when it starts): `user_deleted` erases
 * and then reports on `user_erased`; `export_requested` builds the service's part and appends it
 * to `export_parts`. Handlers are idempotent; a failure leaves the event pending and the event log
 * delivers it again (at least once). A malformed event is logged and acknowledged.
 */
export async function startUserDataConsumers(
  platform: Platform,
  logger: Logger,
  handlers: UserDataHandlers,
): Promise<UserDataConsumers> {
  const log = eventLogFor(platform);
  const { service } = handlers;
  const handled = platform.metrics.counter(
    "user_data_events_total",
    "Account deletions and data exports handled by this service",
    ["service", "kind", "outcome"],
  );
  const consumers: EventConsumer[] = [];
  const common = { group: service, consumer: platform.instanceId };
  const erase = handlers.erase;
  if (erase) {
    consumers.push(
      await log.consume({
        ...common,
        stream: platform.keys.userDeletedStream,
        handler: async (entry) => {
          const event = parse(UserDeletedEvent, entry.payload);
          if (!event) {
            logger.error({ event_id: entry.id }, "malformed user-deleted event dropped");
            handled.inc({ service, kind: "erase", outcome: "malformed" });
            return;
          }
          await erase(event.userId);
          await publishUserErased(platform, { userId: event.userId, service: service as ErasingService });
          handled.inc({ service, kind: "erase", outcome: "erased" });
          logger.info({ user_id: event.userId }, "user data erased");
        },
        onError: (error, entry) => {
          handled.inc({ service, kind: "erase", outcome: "failed" });
          logger.warn({ err: String(error), event_id: entry?.id }, "user erasure failed; will be redelivered");
        },
      }),
    );
  }
  const maxBytes = platform.env.EXPORT_PART_MAX_BYTES;
  consumers.push(
    await log.consume({
      ...common,
      stream: platform.keys.exportRequestedStream,
      handler: async (entry) => {
        const event = parse(ExportRequestedEvent, entry.payload);
        if (!event) {
          logger.error({ event_id: entry.id }, "malformed export-requested event dropped");
          handled.inc({ service, kind: "export", outcome: "malformed" });
          return;
        }
        const json = JSON.stringify(await handlers.export(event.userId));
        const bytes = Buffer.byteLength(json);
        const part = { exportId: event.exportId, userId: event.userId, service };
        if (bytes > maxBytes) {
          // Failing the export says plainly what happened; a truncated archive would not.
          await publishExportPart(platform, {
            ...part,
            error: { code: "part_too_large", message: `the ${service} part is ${bytes} bytes, over ${maxBytes}` },
          });
          handled.inc({ service, kind: "export", outcome: "too_large" });
          logger.warn({ user_id: event.userId, export_id: event.exportId, bytes }, "export part too large");
          return;
        }
        await publishExportPart(platform, { ...part, json });
        handled.inc({ service, kind: "export", outcome: "sent" });
      },
      onError: (error, entry) => {
        handled.inc({ service, kind: "export", outcome: "failed" });
        logger.warn({ err: String(error), event_id: entry?.id }, "export part failed; will be redelivered");
      },
    }),
  );
  return {
    async stop() {
      await Promise.all(consumers.map((consumer) => consumer.stop()));
    },
    async pending() {
      const counts = await Promise.all(consumers.map((consumer) => consumer.pending()));
      return counts.reduce((sum, n) => sum + n, 0);
    },
  };
}

function parse<T>(
  schema: { safeParse(value: unknown): { success: true; data: T } | { success: false } },
  text: string,
) {
  try {
    const result = schema.safeParse(JSON.parse(text));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}
