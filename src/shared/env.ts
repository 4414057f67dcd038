import { readFileSync } from "node:fs";
import { z } from "zod";
import { redisTopology } from "./redis";

export const SERVICE_NAMES = ["auth", "chat", "agent", "billing", "storage", "plugins"] as const;
export const ServiceName = z.enum(SERVICE_NAMES);
export type ServiceName = z.infer<typeof ServiceName>;

const optionalUrl = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .pipe(z.string().url().optional())
  .optional();

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .optional();

/**
 * An instant as an ISO 8601 date (`2026-03-31`: midnight UTC) or date-time with its offset
 * (`2026-03-31T18:00:00+02:00`); a date-time without one would depend on the host's time zone.
 */
const optionalInstant = z
  .string()
  .trim()
  .transform((value) => (value === "" ? undefined : value))
  .pipe(
    z
      .union([z.iso.date(), z.iso.datetime({ offset: true })], "must be an ISO date or a date-time with its offset")
      .transform((value) => new Date(value))
      .refine((date) => !Number.isNaN(date.getTime()), "must be a real date")
      .optional(),
  )
  .optional();

/** Every variable any service reads; each service validates the ones it needs in `requireFor`. */
export const Env = z.object({
  SERVICE_NAME: z.enum([...SERVICE_NAMES, "all"]),
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  HOST: z.string().default("0.0.0.0"),
  /**
   * Prometheus's port, apart from PORT so the public entry never serves /metrics. Unset: 9464, or
   * any free port when PORT is 0 (tests, several instances on one host).
   */
  METRICS_PORT: z.preprocess(
    (value) => (value === "" ? undefined : value),
    z.coerce.number().int().min(0).max(65535).optional(),
  ),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Unset: embedded PGlite under DATA_DIR (development only). PostgreSQL only: postgres:// or postgresql://. */
  DATABASE_URL: optionalUrl.refine(
    (value) => value === undefined || /^postgres(ql)?:\/\//i.test(value),
    "must be a postgres:// or postgresql:// URL",
  ),
  /**
   * A file holding the database password (a Docker secret); it replaces any password in
   * DATABASE_URL, so the password needs no URL encoding and never sits in the environment.
   */
  DATABASE_PASSWORD_FILE: optionalString,
  /** PostgreSQL connections this process opens at most; replicas x this must stay under max_connections. */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
  /**
   * `transaction` when DATABASE_URL points at a pooler in transaction mode (PgBouncer): no prepared
   * statements and no session settings are used, so any server connection may run any
   * transaction; the statement timeout is then the role's (`ALTER ROLE … SET statement_timeout`).
   */
  DATABASE_POOL_MODE: z.enum(["session", "transaction"]).default("session"),
  /**
   * A direct connection for migrations (behind a transaction pooler, DDL and its advisory lock go to
   * PostgreSQL itself); unset: DATABASE_URL. DATABASE_PASSWORD_FILE applies to it too.
   */
  MIGRATION_DATABASE_URL: optionalUrl.refine(
    (value) => value === undefined || /^postgres(ql)?:\/\//i.test(value),
    "must be a postgres:// or postgresql:// URL",
  ),
  /**
   * One Redis node. Or, instead, REDIS_SENTINELS + REDIS_SENTINEL_NAME, or REDIS_CLUSTER_NODES.
   * None of the three: in-process adapters for bus, presence, rate limiting and jobs (development only).
   */
  REDIS_URL: optionalUrl,
  /** Sentinels watching the master, `host:port,host:port` (port 26379 when left out). */
  REDIS_SENTINELS: optionalString,
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: optionalString,
  /** Some nodes of a Redis Cluster, `host:port,host:port`; the client discovers the others. */
  REDIS_CLUSTER_NODES: optionalString,
  /** An ACL user for the Redis nodes (REDIS_URL may carry its own). */
  REDIS_USERNAME: optionalString,
  /** A file holding the Redis nodes' password (a Docker secret); it replaces any in REDIS_URL. */
  REDIS_PASSWORD_FILE: optionalString,
  /** A file holding the sentinels' own password, when they have one. */
  REDIS_SENTINEL_PASSWORD_FILE: optionalString,
  /**
   * Replicas that must hold an event (tier changes, deletions, exports) before its producer
   * forgets it; unset: 1 on Sentinel and Cluster, 0 on one node. 0 prefers availability: events a
   * master acknowledged just before a failover can be lost.
   */
  REDIS_WAIT_REPLICAS: z.preprocess(
    (value) => (value === "" ? undefined : value),
    z.coerce.number().int().min(0).max(10).optional(),
  ),
  /** TLS to the Sentinel-managed or Cluster nodes (REDIS_URL says it with `rediss://`). */
  REDIS_TLS: z.stringbool().default(false),
  /** Namespaces every Redis key and channel, so deployments (or tests) can share one Redis. */
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w:.-]+$/)
    .default("adiuva"),
  DATA_DIR: z.string().default(".data"),
  INSTANCE_ID: optionalString,
  PUBLIC_URL: z.string().url().default("http://localhost:8000"),
  /** With NODE_ENV=production the OpenAPI page and document answer 404 unless this is true. */
  DOCS_PUBLIC: z.stringbool().default(false),
  /**
   * Origins whose pages may call the API from a browser (the app's renderer, e.g. `app://adiuva`),
   * comma-separated `scheme://host[:port]`; empty: no cross-origin access at all.
   */
  CORS_ORIGINS: z
    .string()
    .default("")
    .transform((value) =>
      value
        .split(",")
        .map((origin) => origin.trim().toLowerCase())
        .filter((origin) => origin !== ""),
    )
    .pipe(z.array(z.string().regex(/^[a-z][a-z0-9+.-]*:\/\/[^/\s?#]+$/i, "each origin is scheme://host[:port]"))),
  /** Largest request body accepted by any route, in bytes. */
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1_048_576),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  /**
   * After SIGTERM, how long /ready answers 503 while the server still takes requests, so the load
   * balancer's health check takes the instance out of rotation before it stops listening.
   */
  SHUTDOWN_DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(0),

  /** Device gateway (chat): time a new socket has to send `hello`. */
  DEVICE_HELLO_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  /** Announced in `welcome`; a device silent for three periods is disconnected. */
  DEVICE_HEARTBEAT_S: z.coerce.number().positive().default(15),
  /** Presence lease lifetime; a crashed instance's devices disappear within it. */
  DEVICE_LEASE_TTL_MS: z.coerce.number().int().positive().default(10_000),
  /** An instance's liveness mark; calls routed to a dead instance fail within about this long. */
  DEVICE_INSTANCE_TTL_MS: z.coerce.number().int().positive().default(5000),
  /** Largest frame a device may send; larger ones get an `error` frame (far larger ones: close 1009). */
  DEVICE_MAX_FRAME_BYTES: z.coerce.number().int().positive().default(1_048_576),
  /** Devices of one free-tier user connected at once; other tiers multiply it by their `deviceScale`. */
  DEVICE_MAX_PER_USER: z.coerce.number().int().positive().default(5),
  /** Sockets of one client IP on one instance that have not yet been welcomed; more are refused with 429. */
  DEVICE_MAX_PENDING_PER_IP: z.coerce.number().int().positive().default(32),
  /** Frames queued for a slow device beyond the socket's own buffer; past it the socket is closed (1013). */
  DEVICE_SEND_BUFFER_BYTES: z.coerce.number().int().positive().default(1_048_576),
  DEVICE_CALL_DEADLINE_MS: z.coerce.number().int().positive().default(30_000),
  /** Progress frames extend a call's deadline, never beyond this. */
  DEVICE_CALL_MAX_DEADLINE_MS: z.coerce.number().int().positive().default(300_000),
  /** Longest a rate-limit check waits on Redis before this instance decides alone. */
  RATE_LIMIT_REDIS_TIMEOUT_MS: z.coerce.number().int().positive().default(100),

  /** Longest a query waits for a database connection before the request gets 503 `database_unavailable`. */
  DATABASE_WAIT_MS: z.coerce.number().int().positive().default(3000),
  /** PostgreSQL's `statement_timeout` for every connection (0: none); migrations run without it. */
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().nonnegative().default(15_000),

  JWT_ISSUER: z.string().default("adiuva-auth"),
  /** `aud` of access tokens: a token minted for another deployment is refused here. */
  JWT_AUDIENCE: z.string().min(1).default("adiuva-api"),
  JWT_PRIVATE_KEY_FILE: optionalString,
  /** Comma-separated PEM files (each may hold several keys) the other services verify with. */
  JWT_PUBLIC_KEY_FILE: optionalString,
  /**
   * Comma-separated PEM files of public keys accepted beside the signing key: the next key before a
   * rotation, the previous one after it (docs/key-rotation.md). Auth publishes them in its JWKS.
   */
  JWT_EXTRA_PUBLIC_KEY_FILES: optionalString,
  JWKS_URL: optionalUrl,
  /**
   * The monolith's HMAC secret, in a file like every secret. With LEGACY_JWT_UNTIL, every service
   * also accepts the monolith's HS256 access tokens until that instant (docs/migration.md).
   */
  LEGACY_JWT_SECRET_FILE: optionalString,
  /** The end of that window; from then on HS256 is refused again, as without these two variables. */
  LEGACY_JWT_UNTIL: optionalInstant,
  ACCESS_TOKEN_TTL_S: z.coerce.number().int().positive().default(900),
  REFRESH_TOKEN_TTL_S: z.coerce
    .number()
    .int()
    .positive()
    .default(30 * 24 * 3600),
  /** A refresh token presented again this soon after its rotation gets the same successor, not a logout. */
  AUTH_REFRESH_GRACE_S: z.coerce.number().int().min(0).default(10),
  /** Login/register requests per minute from one client IP. */
  AUTH_IP_REQUESTS_PER_MIN: z.coerce.number().int().positive().default(30),
  /** Refresh requests per minute from one client IP: a budget of its own, roomy for many devices behind one NAT. */
  AUTH_REFRESH_IP_REQUESTS_PER_MIN: z.coerce.number().int().positive().default(60),
  /** Failed logins for one account (e-mail) from one IP before that pair is locked; each further failure doubles the lock. */
  AUTH_LOCKOUT_THRESHOLD: z.coerce.number().int().positive().default(5),
  /** Failed logins for one account from all IPs together before each further one delays it from everywhere. */
  AUTH_ACCOUNT_LOCKOUT_THRESHOLD: z.coerce.number().int().positive().default(50),
  /** That account-wide delay: short, so an attacker slows the owner down but cannot lock them out. */
  AUTH_ACCOUNT_LOCKOUT_DELAY_S: z.coerce.number().int().positive().default(10),
  /** Failed logins from one IP before it is locked the same way. */
  AUTH_IP_LOCKOUT_THRESHOLD: z.coerce.number().int().positive().default(20),
  AUTH_LOCKOUT_BASE_S: z.coerce.number().int().positive().default(30),
  AUTH_LOCKOUT_MAX_S: z.coerce.number().int().positive().default(3600),
  /**
   * Largest part of a data export one service may contribute (its JSON, in bytes); a larger part
   * fails the whole export with `part_too_large` rather than filling Redis and the database.
   */
  EXPORT_PART_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(50 * 1024 * 1024),
  /**
   * Where auth's mails go: `smtps://user:pass@host:465` (TLS from the start) or `smtp://host:587`
   * (STARTTLS when offered); credentials URL-encoded. Unset outside production: each mail is written
   * to DATA_DIR/mail/*.eml instead. Required by auth in production.
   */
  SMTP_URL: z
    .string()
    .trim()
    .transform((value) => (value === "" ? undefined : value))
    .pipe(
      z
        .string()
        .regex(/^smtps?:\/\/[^\s/?#]+(?::\d+)?\/?(?:\?\S*)?$/i, "must be smtp://host[:port] or smtps://host[:port]")
        .optional(),
    )
    .optional(),
  /** The sender of auth's mails, `Adiuva <no-reply@example.com>`. Required by auth in production. */
  MAIL_FROM: z
    .string()
    .trim()
    .transform((value) => (value === "" ? undefined : value))
    .pipe(
      z
        .string()
        .regex(/^(?:[^<>\r\n]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/, "must be an address or Name <address>")
        .optional(),
    )
    .optional(),
  /** The page a password-reset link opens (`?token=…` is appended; an app link such as `adiuva://reset` works). Unset: PUBLIC_URL + /account/reset. */
  PASSWORD_RESET_URL: z
    .string()
    .trim()
    .regex(/^[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*$/i, "must be scheme://... with no spaces or quotes")
    .optional(),
  /** The page an address-confirmation link opens (`?token=…` appended). Unset: PUBLIC_URL + /account/verify. */
  EMAIL_VERIFY_URL: z
    .string()
    .trim()
    .regex(/^[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*$/i, "must be scheme://... with no spaces or quotes")
    .optional(),
  /** How long a password-reset link works. */
  PASSWORD_RESET_TTL_S: z.coerce.number().int().min(60).max(86_400).default(1800),
  /** How long an address-confirmation link (sign-up or change of address) works. */
  EMAIL_VERIFY_TTL_S: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .default(86_400),
  /** Mails that a password reset or a confirmation resend may send per client IP per hour. */
  AUTH_MAIL_IP_PER_HOUR: z.coerce.number().int().positive().default(20),
  /** Mails of those kinds per address (reset) or per account (resend, change of address) per hour. */
  AUTH_MAIL_ADDRESS_PER_HOUR: z.coerce.number().int().positive().default(5),
  /** How often each auth replica looks for mails due in the outbox. */
  MAIL_OUTBOX_INTERVAL_MS: z.coerce.number().int().min(20).default(2000),
  /** The first retry of a mail SMTP did not take; each further one waits twice as long, up to MAIL_RETRY_MAX_MS. */
  MAIL_RETRY_BASE_MS: z.coerce.number().int().min(10).default(5000),
  MAIL_RETRY_MAX_MS: z.coerce
    .number()
    .int()
    .min(10)
    .default(15 * 60_000),
  /** A mail not sent this long after it was written is given up (marked failed, logged at error). */
  MAIL_GIVE_UP_AFTER_S: z.coerce
    .number()
    .int()
    .min(1)
    .default(48 * 3600),
  /** Proxies in front of the service that append to X-Forwarded-For (Traefik: 1); 0 trusts none. */
  TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).default(0),
  /** Password hashes computed at once; more wait in a bounded queue, beyond it 503. */
  PASSWORD_HASH_CONCURRENCY: z.coerce.number().int().positive().default(2),
  PASSWORD_HASH_QUEUE: z.coerce.number().int().min(0).default(64),
  /** argon2id memory per hash (KiB) and passes; OWASP's minimum is 19456 KiB with 2 passes. */
  PASSWORD_HASH_MEMORY_KIB: z.coerce.number().int().min(1024).default(19_456),
  PASSWORD_HASH_TIME_COST: z.coerce.number().int().min(1).default(2),
  /** Wraps every user's encryption key (AES-256-GCM); base64 of 32 bytes. */
  MASTER_KEY_FILE: optionalString,

  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: optionalString,
  LLM_CHAT_MODEL: z.string().default("gpt-4o-mini"),
  LLM_CLASSIFY_MODEL: z.string().default("gpt-4o-mini"),
  LLM_EMBEDDING_MODEL: z.string().default("text-embedding-3-small"),
  QDRANT_URL: optionalUrl,
  QDRANT_API_KEY: optionalString,
  /** One collection holds every user's memories; the user id payload index is marked as tenant. */
  QDRANT_COLLECTION: z.string().default("chat_memories"),

  /** Longest chat message accepted, in characters. */
  CHAT_MAX_INPUT_CHARS: z.coerce.number().int().positive().default(8000),
  /** Earlier messages of a conversation sent to the model with each turn. */
  CHAT_HISTORY_MESSAGES: z.coerce.number().int().min(0).default(20),
  /** Time a device has to answer one tool call made by the chat agent. */
  CHAT_TOOL_DEADLINE_MS: z.coerce.number().int().positive().default(15_000),
  /**
   * Longest a turn waits for the plugins service to name the user's installed plugins before it
   * answers without plugin tools (docs/plugin-tools.md).
   */
  CHAT_PLUGIN_LOOKUP_MS: z.coerce.number().int().min(10).default(500),
  /**
   * File holding the key (any secret text) the chat agent derives each user's pseudonym for a
   * plugin from (HMAC-SHA256 of plugin id and user id); unset: plugins receive no user identity.
   */
  PLUGIN_PSEUDONYM_KEY_FILE: optionalString,
  /** Longest silence on a chat SSE stream before a `: keep-alive` comment goes out (proxies cut idle streams). */
  CHAT_SSE_KEEPALIVE_MS: z.coerce.number().int().min(10).default(15_000),
  /** How long a turn's chunks stay resumable (`chat_resume`, `GET /chat/:chat_id/stream`) after it ends. */
  CHAT_RESUME_TTL_S: z.coerce.number().int().min(1).default(600),
  /**
   * The lease a chat instance holds on the turns it generates, renewed every third of it: a turn whose
   * instance stopped renewing (killed) is declared interrupted by another instance within about this long.
   */
  CHAT_TURN_LEASE_MS: z.coerce.number().int().min(300).default(3000),
  /** Turns one user may have generating at once, across devices and instances; more are refused with 429. */
  CHAT_MAX_RUNNING_TURNS: z.coerce.number().int().min(1).default(8),
  /** How long a journey frame from a device waits for an agent replica before it is withdrawn and the device told. */
  JOURNEY_QUEUE_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /** Time memory retrieval may take before a reply goes on without memories. */
  MEMORY_BUDGET_MS: z.coerce.number().int().min(0).default(150),
  /** Memories injected into one turn at most. */
  MEMORY_MAX_RESULTS: z.coerce.number().int().min(0).default(5),
  /** Cosine similarity under which a memory is not considered relevant. */
  MEMORY_MIN_SCORE: z.coerce.number().min(-1).max(1).default(0.25),
  /** Cosine similarity above which a new fact counts as one already stored. */
  MEMORY_DEDUP_SCORE: z.coerce.number().min(-1).max(1).default(0.9),

  /** false: this agent replica serves the API but takes no runs from the queue. */
  AGENT_WORKER: z.stringbool().default(true),
  /** Runs one agent replica works on at once. */
  AGENT_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(4),
  /** Files of one run processed at once (device reads, model calls, device writes). */
  AGENT_ITEM_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** Deadline of one device tool call made by an agent run. */
  AGENT_DEVICE_CALL_MS: z.coerce.number().int().positive().default(30_000),
  /** How long a run stays paused waiting for its device before it fails. */
  AGENT_DEVICE_GRACE_MS: z.coerce.number().int().nonnegative().default(60_000),
  /**
   * Lock on a running job, renewed every half of it: a replica silent for this long loses its run
   * to another one. With the stalled check below, a dead replica's runs move within 15 s.
   */
  AGENT_JOB_LOCK_MS: z.coerce.number().int().min(500).default(8_000),
  /** How often agent replicas look for running jobs whose lock lapsed. */
  AGENT_STALLED_INTERVAL_MS: z.coerce.number().int().min(200).default(4_000),
  /** How often each agent replica re-enqueues runs PostgreSQL has as active but the queue lost. */
  AGENT_RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(15_000),
  AGENT_RUN_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  /** Journey turns relayed from device sockets that one agent replica answers at once (one model call each). */
  AGENT_JOURNEY_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),

  STRIPE_SECRET_KEY: optionalString,
  STRIPE_WEBHOOK_SECRET: optionalString,
  /** Points the Stripe SDK at another host (tests run a fake Stripe API). */
  STRIPE_API_BASE: optionalUrl,
  STRIPE_PRICE_PRO: optionalString,
  STRIPE_PRICE_POWER: optionalString,
  STRIPE_PRICE_TEAM: optionalString,
  /** How old a webhook's signed timestamp may be before it is refused (replay protection). */
  STRIPE_WEBHOOK_TOLERANCE_S: z.coerce.number().int().positive().default(300),
  STRIPE_TIMEOUT_MS: z.coerce.number().int().positive().default(20_000),
  /** The SDK retries network errors and 5xx with the same idempotency key. */
  STRIPE_MAX_NETWORK_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  /** Where Checkout sends the user back; unset: PUBLIC_URL + /billing/success|cancel. */
  BILLING_SUCCESS_URL: optionalUrl,
  BILLING_CANCEL_URL: optionalUrl,
  /** Where the customer portal's "return" link goes; unset: PUBLIC_URL + /billing. */
  BILLING_PORTAL_RETURN_URL: optionalUrl,
  /**
   * The desktop app's deep link, which the billing pages open (and offer as a button) and the
   * account pages offer as buttons; each page appends its own path to it (`billing/success`,
   * `account/password-changed`). Any `scheme://`: `adiuva://`, or an https link.
   */
  APP_DEEP_LINK: z
    .string()
    .trim()
    .regex(/^[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*$/i, "must be scheme://... with no spaces or quotes")
    .default("adiuva://"),
  /**
   * Comma-separated origins (e.g. `https://app.adiuva.ai,adiuva://billing`) a client may name as
   * success/cancel/return URL; the defaults' origins and PUBLIC_URL's are always allowed.
   */
  BILLING_REDIRECT_ORIGINS: optionalString,
  /**
   * The platform's share of every paid plugin sale, in percent (at most two decimals, as Stripe's
   * `application_fee_percent`); the publisher's Stripe account gets the rest.
   */
  PLUGIN_PLATFORM_FEE_PERCENT: z.preprocess(
    // Empty is unset: coerced, it would be a silent 0%.
    (value) => (value === "" ? undefined : value),
    z.coerce
      .number()
      .min(0)
      .max(100)
      .refine((value) => Math.abs(value * 100 - Math.round(value * 100)) < 1e-9, "at most two decimals")
      .default(20),
  ),
  /** Signing secret of the Stripe webhook endpoint for plugin purchases (checkout, refunds, subscriptions). */
  PLUGINS_STRIPE_WEBHOOK_SECRET: optionalString,
  /** Signing secret of the Stripe Connect webhook endpoint (publishers' `account.updated`), if it is a separate one. */
  PLUGINS_STRIPE_CONNECT_WEBHOOK_SECRET: optionalString,

  /**
   * The S3-compatible endpoint holding users' files and backups (AWS, MinIO, R2...). Unset (with
   * the four below): embedded mode, files under DATA_DIR/storage, served by the storage service
   * itself through signed URLs of the same shape.
   */
  S3_ENDPOINT: optionalUrl,
  S3_BUCKET: optionalString,
  S3_REGION: z.string().trim().min(1).default("us-east-1"),
  S3_ACCESS_KEY_ID: optionalString,
  S3_SECRET_ACCESS_KEY: optionalString,
  /** Lifetime of every presigned upload and download URL; short, because a URL is a bearer credential. */
  STORAGE_URL_TTL_S: z.coerce.number().int().min(10).max(3600).default(900),
  /** How long an upload may stay incomplete before it is aborted and its quota reservation released. */
  STORAGE_UPLOAD_TTL_S: z.coerce.number().int().min(60).default(86_400),
  /** How often each storage replica aborts expired uploads and prunes backups past their tier's retention. */
  STORAGE_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).default(300_000),
  /** Objects whose SHA-256 one storage replica computes at once when uploads complete (each streams its object once). */
  STORAGE_VERIFY_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** The Qdrant collection of indexed document chunks (one for every user, tenant index on the user id). */
  QDRANT_DOCUMENTS_COLLECTION: z.string().default("storage_documents"),

  /**
   * The plugin marketplace's reviewers: user ids (comma-separated UUIDs) who may approve, reject and
   * suspend plugins and remove reviews. Empty: nobody, and every admin route answers 403.
   */
  PLUGINS_ADMIN_USER_IDS: z
    .string()
    .default("")
    .transform((value) =>
      value
        .split(",")
        .map((id) => id.trim().toLowerCase())
        .filter((id) => id !== ""),
    )
    .pipe(z.array(z.uuid("each admin is a user id (UUID)"))),
  /** Calls per minute one user may make to one installed plugin, unless its manifest sets `limits.callsPerMinute`. */
  PLUGIN_CALLS_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(30),
  /** Deadline of one call to a plugin's tool, unless its manifest sets `limits.timeoutMs`. */
  PLUGIN_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(15_000),
});
export type Env = z.infer<typeof Env>;

/**
 * A start-up failure whose cause is known (an unreachable dependency, a port in use, a locked data
 * directory): reported as one log line naming it, without a stack.
 */
export class StartupError extends Error {
  override name = "StartupError";
}

/** A variable that is missing, malformed or names a file that cannot be read. */
export class ConfigError extends StartupError {
  override name = "ConfigError";
}

/** Reads a file a variable names, once at start; a missing or unreadable one is a ConfigError naming both. */
export function readConfigFile(variable: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === "ENOENT" ? "no such file" : code === "EACCES" ? "cannot read" : `${code ?? "unreadable"}:`;
    throw new ConfigError(`invalid configuration: ${variable}: ${problem} ${path}`);
  }
}

/**
 * Variables a service cannot run without in production; development falls back to embedded defaults.
 * Chat needs the pseudonym key: without it plugins cannot tell one user from another (docs/plugin-tools.md).
 * Plugins needs no Stripe: a marketplace of free plugins runs without it, paid ones answer 503 and
 * the start says so (`paidPluginsMissing`, docs/plugins.md).
 */
export const requiredInProduction: Record<ServiceName, (keyof Env)[]> = {
  auth: ["DATABASE_URL", "REDIS_URL", "JWT_PRIVATE_KEY_FILE", "MASTER_KEY_FILE", "SMTP_URL", "MAIL_FROM"],
  chat: ["DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "PLUGIN_PSEUDONYM_KEY_FILE"],
  agent: ["DATABASE_URL", "REDIS_URL", "LLM_BASE_URL"],
  billing: ["DATABASE_URL", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"],
  storage: [
    "DATABASE_URL",
    "REDIS_URL",
    "LLM_BASE_URL",
    "S3_ENDPOINT",
    "S3_BUCKET",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
  ],
  plugins: ["DATABASE_URL", "REDIS_URL"],
};

/** Parses the environment once; throws a ConfigError naming every offending variable. */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const parsed = Env.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path.join(".") || "environment";
      const value = source[name];
      return value === undefined && issue.code === "invalid_value"
        ? `${name} is required (one of: ${"values" in issue ? issue.values.join(", ") : "?"})`
        : `${name}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const env = parsed.data;
  if (env.METRICS_PORT !== undefined && env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) {
    throw new ConfigError("invalid configuration: METRICS_PORT must differ from PORT");
  }
  if ((env.LEGACY_JWT_SECRET_FILE === undefined) !== (env.LEGACY_JWT_UNTIL === undefined)) {
    // Half a window is a mistake either way: a secret with no end, or an end with nothing to accept.
    throw new ConfigError("invalid configuration: LEGACY_JWT_SECRET_FILE and LEGACY_JWT_UNTIL must be set together");
  }
  // A wrong topology (two at once, a sentinel list without the master's name) fails here, at start.
  const redis = redisTopology(env);
  if (env.NODE_ENV === "production") {
    const services = env.SERVICE_NAME === "all" ? SERVICE_NAMES : [env.SERVICE_NAME];
    const missing = new Set<string>();
    for (const service of services) {
      for (const name of requiredInProduction[service]) {
        if (name === "REDIS_URL") {
          if (!redis) missing.add("REDIS_URL (or REDIS_SENTINELS or REDIS_CLUSTER_NODES)");
        } else if (env[name] === undefined) missing.add(name);
      }
    }
    if (env.SERVICE_NAME !== "auth" && !env.JWT_PUBLIC_KEY_FILE && !env.JWKS_URL && !env.JWT_PRIVATE_KEY_FILE) {
      missing.add("JWT_PUBLIC_KEY_FILE or JWKS_URL");
    }
    if (missing.size > 0) {
      throw new ConfigError(`invalid configuration: ${[...missing].join(", ")} must be set when NODE_ENV=production`);
    }
  }
  return env;
}
