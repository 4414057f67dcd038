import type Stripe from "stripe";
import { ConfigError, type Env } from "../shared/env";
import { UnconfiguredError, unprocessable } from "../shared/errors";
import { createStripeClient } from "../shared/stripe-client";
import type { Tier } from "../shared/tiers";

export type PaidTier = Exclude<Tier, "free">;
export const PAID_TIERS = ["pro", "power", "team"] as const satisfies readonly PaidTier[];

/** Billing's configuration, parsed once from the environment. */
export interface BillingConfig {
  /** Absent when STRIPE_SECRET_KEY is unset (development): Stripe-backed routes answer 503. */
  stripe?: Stripe;
  webhookSecret?: string;
  webhookToleranceS: number;
  prices: Partial<Record<PaidTier, string>>;
  successUrl: string;
  cancelUrl: string;
  portalReturnUrl: string;
  /** Scheme + host pairs a client may redirect to, e.g. `https://app.adiuva.ai`, `adiuva://billing`. */
  redirectOrigins: Set<string>;
  /** The app's deep link (APP_DEEP_LINK) the billing pages open, each with its own path appended. */
  appDeepLink: string;
}

export function billingConfig(env: Env): BillingConfig {
  const base = env.PUBLIC_URL.replace(/\/$/, "");
  const successUrl = env.BILLING_SUCCESS_URL ?? `${base}/billing/success`;
  const cancelUrl = env.BILLING_CANCEL_URL ?? `${base}/billing/cancel`;
  const portalReturnUrl = env.BILLING_PORTAL_RETURN_URL ?? `${base}/billing`;
  const listed = (env.BILLING_REDIRECT_ORIGINS ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  const redirectOrigins = new Set(
    [env.PUBLIC_URL, successUrl, cancelUrl, portalReturnUrl, ...listed].map((url) => {
      if (!URL.canParse(url))
        throw new ConfigError(`invalid configuration: BILLING_REDIRECT_ORIGINS: ${url} is not a URL`);
      return originOf(url);
    }),
  );
  return {
    stripe: env.STRIPE_SECRET_KEY ? createStripeClient(env, env.STRIPE_SECRET_KEY, "adiuva-billing") : undefined,
    webhookSecret: env.STRIPE_WEBHOOK_SECRET,
    webhookToleranceS: env.STRIPE_WEBHOOK_TOLERANCE_S,
    prices: { pro: env.STRIPE_PRICE_PRO, power: env.STRIPE_PRICE_POWER, team: env.STRIPE_PRICE_TEAM },
    successUrl,
    cancelUrl,
    portalReturnUrl,
    redirectOrigins,
    appDeepLink: env.APP_DEEP_LINK,
  };
}

/** `scheme://host[:port]` of a URL; unlike `URL.origin` it also works for app schemes. */
export function originOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
}

/** The Stripe client, or 503 when billing is not configured on this deployment. */
export function requireStripe(config: BillingConfig): Stripe {
  if (!config.stripe) {
    throw new UnconfiguredError("billing_unconfigured", "billing is not configured on this server", [
      "STRIPE_SECRET_KEY",
    ]);
  }
  return config.stripe;
}

/** The variable holding a tier's Stripe price. */
export const priceVariable = (tier: PaidTier) => `STRIPE_PRICE_${tier.toUpperCase()}`;

/** The tier a Stripe price grants, or null for a price this deployment does not sell. */
export function tierForPrice(config: BillingConfig, priceId: string | null | undefined): PaidTier | null {
  if (!priceId) return null;
  for (const tier of PAID_TIERS) if (config.prices[tier] === priceId) return tier;
  return null;
}

/** Stripe writes the Checkout Session's id where this placeholder stands in `success_url`. */
const SESSION_ID_PARAMETER = "session_id={CHECKOUT_SESSION_ID}";

/**
 * The success URL a Checkout Session is created with: this deployment's success page gets the
 * session id, so the page can confirm the payment with Stripe and show the plan. A URL the client
 * chose elsewhere (the app's own scheme) is left as given. Appended as text: Stripe substitutes
 * only the literal braces, which URLSearchParams would percent-encode.
 */
export function checkoutSuccessUrl(config: BillingConfig, url: string): string {
  if (url.includes("{CHECKOUT_SESSION_ID}") || withoutQuery(url) !== withoutQuery(config.successUrl)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}${SESSION_ID_PARAMETER}`;
}

const withoutQuery = (url: string) => url.split(/[?#]/)[0];

/** The client's redirect URL if its origin is allowed, the default when none was given; else 422. */
export function redirectUrl(config: BillingConfig, field: string, requested: string | undefined, fallback: string) {
  if (requested === undefined) return fallback;
  if (!config.redirectOrigins.has(originOf(requested))) {
    throw unprocessable("request failed validation", [{ path: field, message: "this origin is not allowed" }]);
  }
  return requested;
}
