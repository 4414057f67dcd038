import Stripe from "stripe";
import { ServiceError, unavailable } from "./errors";
import type { Logger } from "./logger";

/**
 * Runs one Stripe call and turns its failures into our error family: Stripe being unreachable,
 * rate-limited or failing is 503 (the caller may retry); a request Stripe refuses is our own
 * misconfiguration (unknown price, bad key), 502 and logged.
 */
export async function stripeCall<T>(logger: Logger, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toServiceError(logger, what, error);
  }
}

/**
 * A Stripe call that deletes or ends something: what Stripe no longer has counts as done, so a
 * retried erasure finishes; any other failure as `stripeCall`.
 */
export async function stripeRemoval(logger: Logger, what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    if (isMissing(error)) return;
    throw toServiceError(logger, what, error);
  }
}

export function toServiceError(logger: Logger, what: string, error: unknown): unknown {
  if (!(error instanceof Stripe.errors.StripeError)) return error;
  const status = error.statusCode ?? 0;
  if (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeRateLimitError ||
    error instanceof Stripe.errors.StripeAPIError ||
    status >= 500
  ) {
    logger.warn({ err: error.message, what, status }, "stripe unavailable");
    return unavailable("stripe_unavailable", "the payment provider is unavailable; try again shortly");
  }
  logger.error({ err: error.message, what, status, code: error.code, type: error.type }, "stripe refused a request");
  return new ServiceError("stripe_error", 502, "the payment provider refused the request");
}

/** True when Stripe says the object does not exist (deleted, or another account's). */
export const isMissing = (error: unknown): boolean =>
  error instanceof Stripe.errors.StripeError && error.code === "resource_missing";
