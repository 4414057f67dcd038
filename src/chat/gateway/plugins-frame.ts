import type { PluginsFrame } from "../../protocol";
import type { Logger } from "../../shared/logger";
import type { InstalledLocalPlugin } from "../../shared/plugin-tools";
import type { DeviceConnection } from "./connection";
import type { DeviceHub } from "./hub";

/** Where the gateway learns a user's local plugins, and hears that they changed. */
export interface LocalPluginSource {
  /** Undefined when the plugins service could not say (then no frame is sent). */
  local(userId: string): Promise<InstalledLocalPlugin[] | undefined>;
  /** Called with a user id after that user's plugins changed; returns the unsubscribe. */
  onChanged(listener: (userId: string) => void): () => void;
}

export interface PluginAnnouncer {
  /** After `welcome`: the connection's first `plugins` frame. */
  welcomed(connection: DeviceConnection): void;
  /** The user's plugins changed: every socket of theirs on this instance gets the new list. */
  changed(userId: string): void;
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

/**
 * Sends `plugins` frames: after each `welcome`, and to the user's sockets on this instance when
 * `pluginsChanged` says their plugins changed. Each lookup takes a number when it starts and a
 * socket never gets an older list after a newer one, whichever answer comes back first; a burst
 * of changes for one user makes at most one lookup more than the one running.
 */
export function createPluginAnnouncer(hub: DeviceHub, source: LocalPluginSource, logger: Logger): PluginAnnouncer {
  let started = 0;
  const sent = new WeakMap<DeviceConnection, number>();
  const running = new Map<string, { again: boolean }>();

  const lookUp = (userId: string) =>
    source.local(userId).catch((error: Error) => {
      logger.warn({ err: error.message }, "local plugins not looked up");
      return undefined;
    });

  const deliver = (connections: DeviceConnection[], number: number, local: InstalledLocalPlugin[]) => {
    const frame = pluginsFrame(local);
    for (const connection of connections) {
      if (connection.state !== "open" || (sent.get(connection) ?? 0) > number) continue;
      sent.set(connection, number);
      connection.send(frame);
    }
  };

  const refresh = async (userId: string, state: { again: boolean }) => {
    try {
      do {
        state.again = false;
        const number = ++started;
        const local = await lookUp(userId);
        if (local) deliver(hub.connectionsOf(userId), number, local);
      } while (state.again && hub.hasUser(userId));
    } finally {
      running.delete(userId);
    }
  };

  return {
    welcomed(connection) {
      const userId = connection.session?.userId;
      if (userId === undefined) return;
      const number = ++started;
      void lookUp(userId).then((local) => {
        if (local) deliver([connection], number, local);
      });
    },
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
