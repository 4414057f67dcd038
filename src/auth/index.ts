import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import { fileList, loadKeyRing } from "../shared/auth/key-ring";
import { withLegacyTokens } from "../shared/auth/legacy-tokens";
import { withRevocations } from "../shared/auth/revocations";
import { createTokenVerifier, tokenPolicy } from "../shared/auth/verifier";
import { ConfigError } from "../shared/env";
import type { EventConsumer } from "../shared/events/event-log";
import { eventLogFor } from "../shared/events/for-platform";
import { migrateService } from "../shared/migrate-service";
import type { Platform } from "../shared/platform";
import { rateLimiterFor } from "../shared/rate-limit";
import { startTierConsumer } from "./consumer";
import type { AuthContext } from "./context";
import { loadAuthSecrets } from "./crypto";
import { DetachedWork } from "./detached";
import { AccountLifecycle } from "./lifecycle";
import { MemoryLockoutStore, RedisLockoutStore } from "./lockout";
import { createMailer } from "./mail/transport";
import { type MailWorker, startMailWorker } from "./mail/worker";
import { migrations } from "./migrations";
import { accountPages } from "./pages";
import { accountActions } from "./pages/actions";
import { PasswordHasher } from "./passwords";
import { AUTH_PREFIX, authRoutes } from "./routes";

export { AUTH_PREFIX } from "./routes";

/** The auth service's HTTP API as Eden Treaty reads it: `treaty<App>(url)`. Types only. */
export type App = ReturnType<typeof authRoutes>;

/** Builds the auth service from its dependencies; no globals. */
export async function createAuthService(platform: Platform): Promise<ServiceModule> {
  const { env } = platform;
  if (!env.JWT_PRIVATE_KEY_FILE) {
    throw new ConfigError("invalid configuration: JWT_PRIVATE_KEY_FILE must be set for the auth service");
  }
  if (env.NODE_ENV === "production" && !env.SMTP_URL) {
    // Without it password resets would be written to files on a server nobody reads.
    throw new ConfigError("invalid configuration: SMTP_URL must be set for the auth service when NODE_ENV=production");
  }
  const ring = await loadKeyRing({
    privateKeyFile: env.JWT_PRIVATE_KEY_FILE,
    extraPublicKeyFiles: fileList(env.JWT_EXTRA_PUBLIC_KEY_FILES),
  });
  const logger = platform.logger.child({ module: "auth" });
  let lifecycle: AccountLifecycle | undefined;
  const ctx: AuthContext = {
    platform,
    db: platform.db,
    env,
    logger,
    ring,
    verifier: withRevocations(
      withLegacyTokens(
        createTokenVerifier({ source: { kind: "keys", keys: () => ring.keys }, ...tokenPolicy(env) }),
        platform.legacyTokens,
      ),
      platform.revocations,
    ),
    secrets: await loadAuthSecrets(env.MASTER_KEY_FILE),
    passwords: new PasswordHasher(env),
    lockout: platform.redis ? new RedisLockoutStore(platform.redis, platform.keys) : new MemoryLockoutStore(),
    limiter: rateLimiterFor(platform),
    wakeLifecycle: () => lifecycle?.notify(),
    accountLockout: {
      threshold: env.AUTH_LOCKOUT_THRESHOLD,
      baseMs: env.AUTH_LOCKOUT_BASE_S * 1000,
      maxMs: env.AUTH_LOCKOUT_MAX_S * 1000,
    },
    ipLockout: {
      threshold: env.AUTH_IP_LOCKOUT_THRESHOLD,
      baseMs: env.AUTH_LOCKOUT_BASE_S * 1000,
      maxMs: env.AUTH_LOCKOUT_MAX_S * 1000,
    },
    detached: new DetachedWork(logger),
  };
  const accountLifecycle = new AccountLifecycle(ctx);
  lifecycle = accountLifecycle;
  let consumer: EventConsumer | undefined;
  let mailWorker: MailWorker | undefined;
  return {
    name: "auth",
    prefix: AUTH_PREFIX,
    // The API, and beside it the pages the mailed links open (docs/pages.md).
    plugin: new Elysia().use(authRoutes(ctx)).use(accountPages(ctx, accountActions(ctx))),
    async start() {
      await migrateService(platform, "auth", migrations);
      // Deletions and exports: the relay of their events, the erasure reports and export parts.
      // Before the tier consumer, whose first applied change is announced to devices at once.
      await accountLifecycle.start();
      const started = await startTierConsumer(ctx, eventLogFor(platform));
      consumer = started;
      // A tier change that keeps failing stays pending (and is retried): this is what to alert on.
      platform.metrics.gaugeFrom(
        "auth_tier_events_pending",
        "Tier-changed events delivered to auth and not yet applied",
        () => started.pending(),
      );
      mailWorker = startMailWorker({
        db: platform.db,
        env,
        logger: logger.child({ component: "mail" }),
        metrics: platform.metrics,
        mailer: createMailer(env, logger.child({ component: "mail" })),
      });
    },
    async stop() {
      await accountLifecycle.stop();
      await consumer?.stop();
      await ctx.detached.settled();
      await mailWorker?.stop();
    },
  };
}
