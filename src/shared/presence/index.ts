import { laneFor } from "../device-rpc/lane";
import type { Platform } from "../platform";
import { MemoryPresence } from "./memory-presence";
import type { Presence } from "./presence";
import { RedisPresence } from "./redis-presence";

export * from "./presence";

const embedded = new WeakMap<Platform, Presence>();

/**
 * The platform's presence store. In embedded mode every service of the process must see the same
 * leases, so the in-process store is shared per platform.
 */
export function presenceFor(platform: Platform): Presence {
  if (platform.redis) return new RedisPresence(platform.redis, platform.keys, laneFor(platform));
  let presence = embedded.get(platform);
  if (!presence) {
    presence = new MemoryPresence(platform.bus, platform.keys);
    embedded.set(platform, presence);
  }
  return presence;
}
