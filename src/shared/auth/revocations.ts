import type { Bus, Unsubscribe } from "../bus/bus";
import type { Keys } from "../keys";
import type { Logger } from "../logger";
import type { Redis } from "../redis";
import { withTimeout } from "../timeout";
import type { RevocationLedger } from "./revocation-ledger";
import { type AuthUser, TokenError, type TokenVerifier } from "./verifier";

/** How often each process reloads the revoked set, in case it missed an announcement. */
const RESYNC_MS = 30_000;
/** Longest a reload waits for PostgreSQL: verification must not hang behind a database outage. */
const LEDGER_TIMEOUT_MS = 2000;

type Listener = (sessionIds: string[]) => void;

/**
 * Sessions (refresh-token families) whose access tokens must stop working before they expire:
 * logout, a password change, a refresh token replayed by a thief. Access tokens stay stateless:
 * each process keeps the few revoked session ids in memory, learns new ones from the bus at once,
 * and reloads them on start and every half minute (a process that missed a message catches up)
 * from Redis and from the ledger, PostgreSQL's record of ended sessions, which is the source of
 * truth: a Redis that restarted empty, or was down when the session ended, loses nothing for longer
 * than one reload. An entry only lives as long as an access token can, so the set stays small.
 */
export class SessionRevocations {
  private readonly revoked = new Map<string, number>();
  private readonly listeners = new Set<Listener>();
  private started?: Promise<void>;
  private unsubscribe?: Unsubscribe;
  private timer?: ReturnType<typeof setInterval>;
  private closed = false;

  constructor(
    private readonly deps: {
      bus: Bus;
      redis?: Redis;
      keys: Keys;
      logger: Logger;
      ledger?: RevocationLedger;
      now?: () => number;
    },
  ) {}

  /** Revokes sessions until `untilMs`, the last moment any of their access tokens is valid. */
  async revoke(sessionIds: string[], untilMs: number): Promise<void> {
    if (sessionIds.length === 0) return;
    await this.start();
    this.remember(sessionIds, untilMs);
    const { redis, keys, bus } = this.deps;
    if (redis) {
      const members = sessionIds.flatMap((id) => [untilMs, id]);
      await redis.zadd(keys.revokedSessions, ...members);
    }
    await bus.publish(keys.sessionsRevoked, JSON.stringify({ session_ids: sessionIds, until: untilMs }));
  }

  async isRevoked(sessionId: string): Promise<boolean> {
    await this.start();
    const until = this.revoked.get(sessionId);
    return until !== undefined && until > this.now();
  }

  /** Called with the session ids of every revocation this process hears of, its own included. */
  onRevoked(listener: Listener): () => void {
    this.listeners.add(listener);
    void this.start();
    return () => this.listeners.delete(listener);
  }

  /** Subscribes and loads the current set once; never rejects (a Redis outage is retried by the resync). */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.resync();
      if (!this.closed) this.timer = setInterval(() => void this.resync(), RESYNC_MS);
    })();
    return this.started;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.unsubscribe?.().catch(() => {});
  }

  private heard(message: string): void {
    try {
      const parsed = JSON.parse(message) as { session_ids?: unknown; until?: unknown };
      if (!Array.isArray(parsed.session_ids) || typeof parsed.until !== "number") return;
      this.remember(
        parsed.session_ids.filter((id): id is string => typeof id === "string"),
        parsed.until,
      );
    } catch {
      // Not ours to fail on: the next resync brings the set back in line.
    }
  }

  /** Keeps the latest `until` of each id; listeners hear only of sessions that were not revoked yet. */
  private remember(sessionIds: string[], untilMs: number): void {
    const now = this.now();
    if (untilMs <= now) return;
    const fresh: string[] = [];
    for (const id of sessionIds) {
      const known = this.revoked.get(id);
      if (known === undefined || known <= now) fresh.push(id);
      if (known === undefined || known < untilMs) this.revoked.set(id, untilMs);
    }
    if (fresh.length > 0) for (const listener of this.listeners) listener(fresh);
  }

  /** Subscribes if not subscribed yet (the first try may have met Redis down). */
  private async subscribe(): Promise<void> {
    if (this.unsubscribe || this.closed) return;
    try {
      this.unsubscribe = await this.deps.bus.subscribe(this.deps.keys.sessionsRevoked, (message) =>
        this.heard(message),
      );
    } catch (error) {
      this.deps.logger.warn({ err: String(error) }, "session revocations: subscribe failed");
    }
  }

  private async resync(): Promise<void> {
    await this.subscribe();
    const now = this.now();
    for (const [id, until] of this.revoked) if (until <= now) this.revoked.delete(id);
    await Promise.all([this.reloadFromRedis(now), this.reloadFromLedger(now)]);
  }

  private async reloadFromLedger(now: number): Promise<void> {
    const { ledger, logger } = this.deps;
    if (!ledger) return;
    try {
      const ended = await withTimeout(ledger.revokedSince(now), LEDGER_TIMEOUT_MS, "revoked sessions ledger");
      for (const session of ended) this.remember([session.id], session.untilMs);
    } catch (error) {
      logger.warn({ err: String(error) }, "session revocations: ledger reload failed");
    }
  }

  private async reloadFromRedis(now: number): Promise<void> {
    const { redis, keys, logger } = this.deps;
    if (!redis) return;
    try {
      await redis.zremrangebyscore(keys.revokedSessions, "-inf", now);
      const entries = await redis.zrangebyscore(keys.revokedSessions, now, "+inf", "WITHSCORES");
      for (let i = 0; i + 1 < entries.length; i += 2) this.remember([entries[i]!], Number(entries[i + 1]));
    } catch (error) {
      logger.warn({ err: String(error) }, "session revocations: reload failed");
    }
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }
}

/** The verifier every service uses: a valid token of a revoked session is refused as `token_revoked`. */
export function withRevocations(verifier: TokenVerifier, revocations: SessionRevocations): TokenVerifier {
  return {
    async verify(token: string): Promise<AuthUser> {
      const user = await verifier.verify(token);
      if (user.sessionId && (await revocations.isRevoked(user.sessionId))) throw new TokenError("token_revoked");
      return user;
    },
  };
}
