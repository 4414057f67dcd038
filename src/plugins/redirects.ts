import { originOf } from "../billing/config";
import { ConfigError, type Env } from "../shared/env";
import { unprocessable } from "../shared/errors";

/**
 * The origins a client may have Stripe send the browser back to, from a plugin's Checkout or a
 * publisher's onboarding: the same list billing allows (PUBLIC_URL's, those of billing's configured
 * pages, and BILLING_REDIRECT_ORIGINS), so one setting names the app's origins for both services.
 */
export function redirectOrigins(env: Env): Set<string> {
  const listed = (env.BILLING_REDIRECT_ORIGINS ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  const urls = [
    env.PUBLIC_URL,
    env.BILLING_SUCCESS_URL,
    env.BILLING_CANCEL_URL,
    env.BILLING_PORTAL_RETURN_URL,
    ...listed,
  ].filter((url): url is string => url !== undefined);
  return new Set(
    urls.map((url) => {
      if (!URL.canParse(url)) {
        throw new ConfigError(`invalid configuration: BILLING_REDIRECT_ORIGINS: ${url} is not a URL`);
      }
      return originOf(url);
    }),
  );
}

/** The client's redirect URL when its origin is allowed; else 422 naming the field. */
export function allowedRedirect(origins: ReadonlySet<string>, field: string, url: string): string {
  if (!origins.has(originOf(url))) {
    throw unprocessable("request failed validation", [{ path: field, message: "this origin is not allowed" }]);
  }
  return url;
}
