/**
 * Every Redis key, channel and stream name, in one place. Nothing else builds a name inline.
 * `prefix` namespaces a deployment (and each test); ids are our own UUIDs, never raw user input.
 */
export function createKeys(prefix = "adiuva") {
  const p = prefix;
  return {
    prefix: p,
    /** BullMQ's own prefix for the agent queues. */
    queuePrefix: `${p}:bull`,

    // Rate limiting and quotas
    rateLimit: (service: string, subject: string) => `${p}:rl:${service}:${subject}`,
    quota: (name: string, subject: string, day: string) => `${p}:quota:${name}:${subject}:${day}`,

    // Device presence and RPC (chat gateway)
    presence: (userId: string) => `${p}:presence:${userId}`,
    /** Hash: the user's device ids -> the connection holding each; its length is what the device cap counts. */
    presenceSlots: (userId: string) => `${p}:presence:${userId}:devices`,
    instanceAlive: (instanceId: string) => `${p}:instance:${instanceId}`,
    instanceInbox: (instanceId: string) => `${p}:inbox:${instanceId}`,
    deviceStream: (userId: string) => `${p}:stream:${userId}`,
    /** A device lease appeared for the user id published here: callers drop the routes they remember. */
    devicePresenceChanged: `${p}:presence-changed`,

    // Events between services
    tierChangedStream: `${p}:events:tier_changed`,
    /** The real-time channel of tier changes, for listeners such as the chat gateway. */
    tierChanged: (userId: string) => `${p}:tier_changed:${userId}`,
    tierChangedPattern: `${p}:tier_changed:*`,

    // Auth
    loginFailures: (subject: string) => `${p}:auth:fail:${subject}`,
    loginLock: (subject: string) => `${p}:auth:lock:${subject}`,
    /** Sorted set: sign-in attempts reserved and not yet settled -> when each reservation expires (ms). */
    loginInFlight: (subject: string) => `${p}:auth:inflight:${subject}`,
    /** Sorted set: revoked session id -> until when (ms) its access tokens could still be valid. */
    revokedSessions: `${p}:auth:revoked-sessions`,
    /** Every process hears revocations here at once; the sorted set is for those that start later. */
    sessionsRevoked: `${p}:auth:sessions-revoked`,

    // Agent service
    agentConcurrency: (userId: string) => `${p}:agent:running:${userId}`,
    agentRunCancel: (runId: string) => `${p}:agent:cancel:${runId}`,
    /** Every replica listens once for cancellations of whichever runs it is working on. */
    agentRunCancelPattern: `${p}:agent:cancel:*`,
  } as const;
}

export type Keys = ReturnType<typeof createKeys>;
