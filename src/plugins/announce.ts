import type { PluginsChanged } from "../shared/plugin-tools";
import type { PluginsContext } from "./context";

/** Publishes at most this many announcements at once: a suspension may concern many users. */
const BATCH = 100;

/**
 * Tells chat instances that users' plugins changed (`keys.pluginsChanged`), after the change is
 * committed. Best effort: a lost message is made up for by the next lookup, so a failure is logged
 * and never fails the request that made the change.
 */
export async function announce(ctx: PluginsContext, changes: PluginsChanged[]): Promise<void> {
  const { bus, keys } = ctx.platform;
  for (let start = 0; start < changes.length; start += BATCH) {
    await Promise.all(
      changes.slice(start, start + BATCH).map((change) =>
        bus.publish(keys.pluginsChanged(change.userId), JSON.stringify(change)).catch((error) => {
          ctx.logger.warn({ err: error, user_id: change.userId }, "plugins change announcement failed");
          return 0;
        }),
      ),
    );
  }
}
