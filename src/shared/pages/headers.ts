/**
 * The pages' Content-Security-Policy: scripts, styles, images and fetches from the page's own
 * origin only, no inline script or style, no framing, no `<base>`, forms posting back only.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

/** One year; sent only on answers that came over TLS, so a plain-HTTP development host is never pinned. */
const HSTS = "max-age=31536000";

/**
 * True when the browser reached us over TLS: directly (`https:` request URL), or through our own
 * proxies (TRUSTED_PROXY_HOPS > 0, the same trust `clientIp` gives X-Forwarded-For) that said so in
 * X-Forwarded-Proto. Traefik overwrites that header for peers it does not trust, and keeps
 * Cloudflare's; the entry nearest to us is the last one.
 */
export function cameOverTls(request: Request, trustedProxyHops: number): boolean {
  if (new URL(request.url).protocol === "https:") return true;
  if (trustedProxyHops === 0) return false;
  const forwarded = (request.headers.get("x-forwarded-proto") ?? "").split(",").at(-1)?.trim().toLowerCase();
  return forwarded === "https";
}

/** The headers every page, script, stylesheet and poll answer carries. */
export function pageSecurityHeaders(request: Request, trustedProxyHops: number): Record<string, string> {
  return {
    "content-security-policy": PAGE_CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    ...(cameOverTls(request, trustedProxyHops) ? { "strict-transport-security": HSTS } : {}),
  };
}
