import type { PluginsFrame } from "../../protocol";
import type { Logger } from "../../shared/logger";
import type { InstalledLocalPlugin } from "../../shared/plugin-tools";
import type { Tier } from "../../shared/tiers";
import type { DeviceConnection } from "./connection";
import type { DeviceHub } from "./hub";

/** Where the gateway learns a user's local plugins, and hears that they changed. */
export interface LocalPluginSource {
  /**
   * The user's local plugins for the session's tier (those whose installed version is for it);
   * undefined when the plugins service could not say (then no frame is sent).
   */
  local(userId: string, tier: Tier): Promise<InstalledLocalPlugin[] | undefined>;
  /** Called with a user id after that user's plugins changed; returns the unsubscribe. */
  onChanged(listener: (userId: string) => void): () => void;
}

export interface PluginAnnouncer {
  /** After `welcome`: the connection's first `plugins` frame. */
  welcomed(connection: DeviceConnection): void;
  /** The user's plugins changed: every socket of theirs on this instance gets the new list. */
  changed(userId: string): void;
  /** The socket's session moved to another tier (a renewed token): its list may differ, it gets it again. */
  tierChanged(connection: DeviceConnection): void;
}

/** The wire form of the local plugins (snake_case, as the rest of the protocol). */
export function pluginsFrame(local: InstalledLocalPlugin[]): PluginsFrame {
  return {
    type: "plugins",
    local: local.map((plugin) => ({
      id: plugin.pluginId,
      slug: plugin.slug,
      version: plugin.version,
      package: { url: plugin.package.url, sha256: plugin.package.sha256 },
      tools: plugin.tools.map((entry) => ({ name: entry.name, description: entry.description })),
      grants: {
        device_tools: [...plugin.grants.deviceTools],
        origins: [...plugin.grants.origins],
        data: [...plugin.grants.data],
      },
    })),
  };
}

/** First pause before a socket whose list could not be looked up asks again; doubled up to the last. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * Sends `plugins` frames: after each `welcome`, to the user's sockets on this instance when
 * `pluginsChanged` says their plugins changed, and to a socket whose session changed tier. The list
 * is looked up for the session's tier, and a socket gets only a list looked up for the tier it has
 * when it arrives. Each lookup takes a number when it starts and a socket never gets an older list
 * after a newer one, whichever answer comes back first; a burst of changes for one user makes at
 * most one lookup more than the one running (per tier its sockets have).
 *
 * A socket whose list could not be looked up (the plugins service away) asks again, with backoff
 * and jitter, until it has a list or closes: a device that connected during an outage gets its
 * list once the service is back, without waiting for a change or reconnecting. While the service
 * is away those asks cost nothing (the lookup answers at once and probes it one at a time).
 */
export function createPluginAnnouncer(hub: DeviceHub, source: LocalPluginSource, logger: Logger): PluginAnnouncer {
  let started = 0;
  const sent = new WeakMap<DeviceConnection, number>();
  const running = new Map<string, { again: boolean }>();
  const retrying = new WeakSet<DeviceConnection>();

  const lookUp = (userId: string, tier: Tier) =>
    source.local(userId, tier).catch((error: Error) => {
      logger.warn({ err: error.message }, "local plugins not looked up");
      return undefined;
    });

  const deliver = (connections: DeviceConnection[], tier: Tier, number: number, local: InstalledLocalPlugin[]) => {
    const frame = pluginsFrame(local);
    for (const connection of connections) {
      // A session that changed tier meanwhile has its own lookup coming.
      if (connection.state !== "open" || connection.session?.tier !== tier) continue;
      if ((sent.get(connection) ?? 0) > number) continue;
      sent.set(connection, number);
      connection.send(frame);
    }
  };

  /** The list for one connection's current tier, sent to it alone; asked again later if there is none. */
  const sendTo = (connection: DeviceConnection, pauseMs = RETRY_FIRST_MS) => {
    const session = connection.session;
    if (session === undefined) return;
    const number = ++started;
    void lookUp(session.userId, session.tier).then((local) => {
      if (local) deliver([connection], session.tier, number, local);
      else retryLater(connection, number, pauseMs);
    });
  };

  /** `failed`: the number of the lookup that found nothing; a list delivered after it settles the debt. */
  const retryLater = (connection: DeviceConnection, failed: number, pauseMs: number) => {
    if (retrying.has(connection) || connection.state === "closed") return;
    retrying.add(connection);
    const jittered = pauseMs * (0.8 + Math.random() * 0.4);
    setTimeout(() => {
      retrying.delete(connection);
      // Closed, or given a newer list meanwhile (a change): nothing is owed.
      if (connection.state !== "open" || (sent.get(connection) ?? 0) > failed) return;
      sendTo(connection, Math.min(pauseMs * 2, RETRY_MAX_MS));
    }, jittered).unref?.();
  };

  /** The tiers of the user's sockets here: usually one, two while a renewed token reaches one socket before another. */
  const tiersOf = (userId: string) =>
    new Set(hub.connectionsOf(userId).flatMap((connection) => (connection.session ? [connection.session.tier] : [])));

  const refresh = async (userId: string, state: { again: boolean }) => {
    try {
      do {
        state.again = false;
        await Promise.all(
          [...tiersOf(userId)].map(async (tier) => {
            const number = ++started;
            const local = await lookUp(userId, tier);
            if (local) deliver(hub.connectionsOf(userId), tier, number, local);
          }),
        );
      } while (state.again && hub.hasUser(userId));
    } finally {
      running.delete(userId);
    }
  };

  return {
    welcomed: (connection) => sendTo(connection),
    tierChanged: (connection) => sendTo(connection),
    changed(userId) {
      if (!hub.hasUser(userId)) return;
      const state = running.get(userId);
      if (state) {
        state.again = true;
        return;
      }
      const fresh = { again: false };
      running.set(userId, fresh);
      void refresh(userId, fresh);
    },
  };
}
