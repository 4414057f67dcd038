import { z } from "zod";
import { CreateConfigInput } from "../agent/model";
import { agentType } from "../agent/registry";
import { passwordHashFormat } from "../auth/legacy-hashes";
import { Tier } from "../shared/tiers";

/**
 * The JSON Lines the monolith is exported to, one schema per file (docs/migration.md lists every
 * field). Objects are strict, as the API's bodies are: a misspelt column is reported, not dropped.
 */

/** The monolith's primary key, integer or text; compared and hashed as text. */
const LegacyId = z.union([z.string().trim().min(1).max(200), z.number().int().nonnegative()]).transform(String);

const HAS_OFFSET = /(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * An ISO 8601 time as PostgreSQL's `row_to_json` writes it (`2024-05-01T10:00:00.123456+00:00`).
 * One without an offset (a `timestamp without time zone` column) is taken as UTC, never as the
 * importing machine's local time.
 */
const Timestamp = z.iso
  .datetime({ offset: true, local: true })
  .transform((value) => new Date(HAS_OFFSET.test(value) ? value : `${value}Z`))
  // Year 0 parses in JavaScript but PostgreSQL refuses it.
  .refine((date) => date.getUTCFullYear() >= 1, "dates before year 1 are not supported");

/** An empty or blank optional text is the same as none. */
const OptionalText = (max: number) =>
  z
    .string()
    .trim()
    .max(max)
    .nullish()
    .transform((value) => (value ? value : null));

export const UserLine = z.strictObject({
  id: LegacyId,
  email: z.email().max(254),
  /** Kept as it is: the user signs in with their old password (src/auth/legacy-hashes.ts). */
  password_hash: z
    .string()
    .max(1024)
    .refine((hash) => passwordHashFormat(hash) !== undefined, "unknown password hash format"),
  tier: Tier.default("free"),
  name: OptionalText(100),
  /** Accepted so the export can carry it; auth keeps no locale. */
  locale: z.string().max(35).nullish(),
  created_at: Timestamp.optional(),
});
export type UserLine = z.infer<typeof UserLine>;

const HEX_SHA256 = /^[0-9a-f]{64}$/i;
const BASE64URL_SHA256 = /^[A-Za-z0-9_-]{43}$/;

/**
 * SHA-256 of the token's UTF-8 text, as hex (64 characters, what PostgreSQL's
 * `encode(sha256(...), 'hex')` gives) or base64url without padding (43 characters); stored as
 * auth stores its own (`hashToken` in src/auth/crypto.ts), so the refresh route finds it.
 */
const TokenSha256 = z
  .string()
  .trim()
  .refine(
    (value) => HEX_SHA256.test(value) || BASE64URL_SHA256.test(value),
    "token_sha256 must be 64 hex or 43 base64url characters",
  )
  .transform((value) => (HEX_SHA256.test(value) ? Buffer.from(value, "hex").toString("base64url") : value));

export const RefreshTokenLine = z.strictObject({
  id: LegacyId,
  user_id: LegacyId,
  token_sha256: TokenSha256,
  expires_at: Timestamp,
  created_at: Timestamp.optional(),
});
export type RefreshTokenLine = z.infer<typeof RefreshTokenLine>;

const StripeId = (prefix: string) =>
  z
    .string()
    .trim()
    .max(255)
    .regex(new RegExp(`^${prefix}_[A-Za-z0-9]+$`), `a Stripe id starting with ${prefix}_`);

/** Stripe's subscription statuses (billing stores them verbatim). */
export const STRIPE_STATUSES = [
  "incomplete",
  "incomplete_expired",
  "trialing",
  "active",
  "past_due",
  "canceled",
  "unpaid",
  "paused",
] as const;

export const SubscriptionLine = z.strictObject({
  /** Stripe's subscription id; billing's primary key already. */
  id: StripeId("sub"),
  user_id: LegacyId,
  customer_id: StripeId("cus"),
  /** The subscription's first item, which a plan change swaps the price of. */
  item_id: StripeId("si").nullish(),
  price_id: z.string().trim().min(1).max(255).nullish(),
  /** The tier the subscription grants when `price_id` is none of STRIPE_PRICE_PRO/POWER/TEAM. */
  tier: z.enum(["pro", "power", "team"]).nullish(),
  status: z.enum(STRIPE_STATUSES),
  current_period_end: Timestamp.nullish(),
  cancel_at_period_end: z.boolean().default(false),
  ended_at: Timestamp.nullish(),
  created_at: Timestamp,
});
export type SubscriptionLine = z.infer<typeof SubscriptionLine>;

/** Columns the monolith may export as null mean "not set", as an absent field does in the API. */
const withoutNulls = (value: unknown) =>
  value && typeof value === "object" && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).filter(([, field]) => field !== null))
    : value;

/**
 * A configuration as `POST /api/v1/agents/configs` takes it (the same schema), plus its ids and
 * creation time; the `config` is then checked against its type's schema, defaults applied, as the
 * API does.
 */
export const AgentConfigLine = z.preprocess(
  withoutNulls,
  CreateConfigInput.extend({ id: LegacyId, user_id: LegacyId, created_at: Timestamp.optional() }).transform(
    (line, ctx) => {
      const type = agentType(line.type);
      if (!type) {
        ctx.addIssue({ code: "custom", path: ["type"], message: `unknown agent type ${JSON.stringify(line.type)}` });
        return z.NEVER;
      }
      const parsed = type.schema.safeParse(line.config);
      if (!parsed.success) {
        for (const issue of parsed.error.issues.slice(0, 3)) {
          ctx.addIssue({ code: "custom", path: ["config", ...issue.path.map(String)], message: issue.message });
        }
        return z.NEVER;
      }
      return {
        id: line.id,
        userId: line.user_id,
        type: type.type,
        kind: type.kind,
        name: line.name ?? type.name,
        config: parsed.data,
        deviceId: line.device_id ?? null,
        createdAt: line.created_at,
      };
    },
  ),
);
export type AgentConfigLine = z.infer<typeof AgentConfigLine>;

export const MemoryLine = z.strictObject({
  id: LegacyId,
  user_id: LegacyId,
  text: z.string().trim().min(1).max(4000),
  created_at: Timestamp.optional(),
});
export type MemoryLine = z.infer<typeof MemoryLine>;
