/**
 * Every Redis key, channel and stream name, in one place. Nothing else builds a name inline.
 * `prefix` namespaces a deployment (and each test); ids are our own UUIDs, never raw user input.
 *
 * On a Redis Cluster a script, MULTI or multi-key command must keep its keys in one slot: keys
 * that travel together share a hash tag (`{…}`, the part Redis hashes). Everything else hashes
 * on its whole name, so users, turns and instance inboxes spread over the shards.
 */
export function createKeys(prefix = "adiuva") {
  const p = prefix;
  return {
    prefix: p,
    /**
     * BullMQ's own prefix for the queues. BullMQ's scripts touch several keys of a queue at once, so
     * on a Cluster the prefix carries a hash tag (every queue in one slot; a queue's traffic is a few
     * commands per job). One node keeps the untagged name so jobs queued before an upgrade stay found.
     */
    queuePrefix: `${p}:bull`,
    clusterQueuePrefix: `${p}:{bull}`,

    // Rate limiting and quotas
    rateLimit: (service: string, subject: string) => `${p}:rl:${service}:${subject}`,
    quota: (name: string, subject: string, day: string) => `${p}:quota:${name}:${subject}:${day}`,

    /** Where storage replicas answer a chat instance's document searches (`documents_search`). */
    documentSearchReplies: (instanceId: string) => `${p}:document-search:replies:${instanceId}`,
    /** Where plugins replicas answer a chat instance's lookups of a user's plugin tools. */
    pluginToolsReplies: (instanceId: string) => `${p}:plugin-tools:replies:${instanceId}`,

    // Device presence and RPC (chat gateway). A user's two presence keys share the user's hash tag:
    // the presence scripts read and write both.
    presence: (userId: string) => `${p}:presence:{${userId}}`,
    /** Hash: the user's device ids -> the connection holding each; its length is what the device cap counts. */
    presenceSlots: (userId: string) => `${p}:presence:{${userId}}:devices`,
    /** Sorted set: the instances holding devices -> until when (Redis clock, ms) their liveness mark lasts. */
    liveInstances: `${p}:presence:instances`,
    instanceInbox: (instanceId: string) => `${p}:inbox:${instanceId}`,
    /**
     * Where several inbox messages travel as one (`InboxSender`). The inbox's whole name is its
     * hash tag, so both channels share a Redis Cluster slot and keep their messages' order.
     */
    instanceBatchInbox: (instanceId: string) => `{${p}:inbox:${instanceId}}:batch`,
    deviceStream: (userId: string) => `${p}:stream:${userId}`,
    /** A device lease appeared for the user id published here: callers drop the routes they remember. */
    devicePresenceChanged: `${p}:presence-changed`,

    // Resumable chat turns. A turn's keys share the hash tag of the turn (`{user:turn}`), so its log
    // and its metadata sit in one Redis Cluster slot; `turn` is a digest of the device's request id.
    chatTurnLog: (userId: string, turn: string) => `${p}:chat:turn:{${userId}:${turn}}:log`,
    chatTurnMeta: (userId: string, turn: string) => `${p}:chat:turn:{${userId}:${turn}}:meta`,
    /** Set once by whoever ends the turn (its instance, or one that found that instance gone). */
    chatTurnEnded: (userId: string, turn: string) => `${p}:chat:turn:{${userId}:${turn}}:ended`,
    chatTurnLive: (userId: string, turn: string) => `${p}:chat:turn:{${userId}:${turn}}:live`,
    /** Hash: the user's running turns, turn digest -> where it runs; its length is the running-turn cap. */
    chatTurnsRunning: (userId: string) => `${p}:chat:turns:{${userId}}:running`,
    /** The conversation's latest turn, for an SSE reconnect with `Last-Event-ID` after the turn ended. */
    chatLatestTurn: (userId: string, chatId: string) => `${p}:chat:turns:{${userId}}:latest:${chatId}`,
    /** Set: `user turn` pairs an instance is generating, swept by the others once its lease is gone. */
    chatInstanceTurns: (instanceId: string) => `${p}:chat:instance:{${instanceId}}:turns`,
    chatInstanceLease: (instanceId: string) => `${p}:chat:instance:{${instanceId}}:lease`,
    /** Set: instances that generate (or generated) turns; swept entries are removed. */
    chatGenerators: `${p}:chat:generators`,
    /** Stop requests for the turns an instance generates. */
    chatTurnStop: (instanceId: string) => `${p}:chat:stop:${instanceId}`,

    // Events between services
    tierChangedStream: `${p}:events:tier_changed`,
    /** The real-time channel of tier changes, for listeners such as the chat gateway. */
    tierChanged: (userId: string) => `${p}:tier_changed:${userId}`,
    /** A user's installed plugins changed (install, uninstall, upgrade, payment ended): chat looks them up again. */
    pluginsChanged: (userId: string) => `${p}:plugins_changed:${userId}`,
    /** Every chat instance listens once for all users' plugin changes (its cache, the `plugins` frame). */
    pluginsChangedPattern: `${p}:plugins_changed:*`,
    tierChangedPattern: `${p}:tier_changed:*`,
    /** Accounts being deleted (auth produces, every other service erases the user's data). */
    userDeletedStream: `${p}:events:user_deleted`,
    /** One entry per service that has erased a deleted user's data (auth consumes). */
    userErasedStream: `${p}:events:user_erased`,
    /** Data exports asked for (auth produces, every service contributes its part). */
    exportRequestedStream: `${p}:events:export_requested`,
    /** Each service's part of an export (auth consumes and assembles the archive). */
    exportPartsStream: `${p}:events:export_parts`,

    // Auth. A sign-in reserves and settles the counters of several subjects (the account, the
    // client address) in one script, so every lockout key shares one hash tag: sign-ins are rare
    // next to device traffic, one slot carries them.
    loginFailures: (subject: string) => `${p}:auth:{lockout}:fail:${subject}`,
    loginLock: (subject: string) => `${p}:auth:{lockout}:lock:${subject}`,
    /** Sorted set: sign-in attempts reserved and not yet settled -> when each reservation expires (ms). */
    loginInFlight: (subject: string) => `${p}:auth:{lockout}:inflight:${subject}`,
    /** Sorted set: revoked session id -> until when (ms) its access tokens could still be valid. */
    revokedSessions: `${p}:auth:revoked-sessions`,
    /** Every process hears revocations here at once; the sorted set is for those that start later. */
    sessionsRevoked: `${p}:auth:sessions-revoked`,

    // Agent service
    agentRunCancel: (runId: string) => `${p}:agent:cancel:${runId}`,
    /** Every replica listens once for cancellations of whichever runs it is working on. */
    agentRunCancelPattern: `${p}:agent:cancel:*`,
  } as const;
}

export type Keys = ReturnType<typeof createKeys>;
