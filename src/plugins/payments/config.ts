import type Stripe from "stripe";
import type { Env } from "../../shared/env";
import { UnconfiguredError } from "../../shared/errors";
import { createStripeClient } from "../../shared/stripe-client";

/** Plugin payments' configuration, parsed once from the environment. */
export interface PluginPaymentsConfig {
  /**
   * The platform's Stripe account (STRIPE_SECRET_KEY, the one billing uses: Connect accounts belong
   * to the platform). Absent in development: buying a plugin answers 503.
   */
  stripe?: Stripe;
  /**
   * Signing secrets a webhook may be signed with: the purchases endpoint's and, when publishers'
   * `account.updated` comes from a separate Connect endpoint, that one's. Both may point at one URL.
   */
  webhookSecrets: string[];
  webhookToleranceS: number;
  /** The platform's share of a sale, in percent (PLUGIN_PLATFORM_FEE_PERCENT). */
  platformFeePercent: number;
}

export function pluginPaymentsConfig(env: Env): PluginPaymentsConfig {
  return {
    stripe: env.STRIPE_SECRET_KEY ? createStripeClient(env, env.STRIPE_SECRET_KEY, "adiuva-plugins") : undefined,
    webhookSecrets: [env.PLUGINS_STRIPE_WEBHOOK_SECRET, env.PLUGINS_STRIPE_CONNECT_WEBHOOK_SECRET].filter(
      (secret): secret is string => secret !== undefined,
    ),
    webhookToleranceS: env.STRIPE_WEBHOOK_TOLERANCE_S,
    platformFeePercent: env.PLUGIN_PLATFORM_FEE_PERCENT,
  };
}

/**
 * The variables whose absence keeps paid plugins from being sold (checkout, publishers' payment
 * accounts and the payment webhook answer 503 `plugin_payments_unconfigured`); empty when they can
 * be. Not required in production: a marketplace of free plugins runs without Stripe, and the
 * service says at start what it cannot sell.
 */
export function paidPluginsMissing(env: Env): string[] {
  return [
    ...(env.STRIPE_SECRET_KEY ? [] : ["STRIPE_SECRET_KEY"]),
    ...(env.PLUGINS_STRIPE_WEBHOOK_SECRET ? [] : ["PLUGINS_STRIPE_WEBHOOK_SECRET"]),
  ];
}

/** The Stripe client, or 503 `plugin_payments_unconfigured` naming what the operator must set. */
export function requirePluginStripe(config: PluginPaymentsConfig): Stripe {
  if (!config.stripe) {
    throw new UnconfiguredError("plugin_payments_unconfigured", "plugin payments are not configured on this server", [
      "STRIPE_SECRET_KEY",
    ]);
  }
  return config.stripe;
}
