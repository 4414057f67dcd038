import { appLink } from "../../shared/pages/app-link";
import { html, type SafeHtml } from "../../shared/pages/html";
import type { PageLanguage } from "../../shared/pages/i18n";
import { type PageDefinition, type PageEndpoint, type PageView, pagesPlugin } from "../../shared/pages/plugin";
import type { BillingContext } from "../context";
import { type CheckoutOutcome, checkoutOutcome } from "./checkout-outcome";
import { PLAN_NAMES, TEXTS, withPlan } from "./texts";

/**
 * Where the billing pages live: Stripe sends the browser back to PUBLIC_URL + these paths
 * (src/billing/config.ts), and Traefik routes `/billing` and `/billing/…` to this service.
 */
export const BILLING_PAGES_PREFIX = "/billing" as const;

/** The success page's poll, answering only the state (and plan name) of the session in its URL. */
export const CHECKOUT_STATUS_PATH = "/success/status";

/** Page loads and polls per minute from one address: a pending page polls about 40 times a minute. */
const PAGES_PER_MINUTE = 60;

/** The pending page asks every 1.5 s for 30 s, then says activation is taking longer. */
const POLL_INTERVAL_MS = 1500;
const POLL_ATTEMPTS = 20;

/** The app's deep link for one page (shared with auth's account pages). */
export { appLink };

/** When the page opens the app by itself: at once, once the poll has an answer, or never. */
type OpenApp = "now" | "when-done" | "never";

function openAppBlock(lang: PageLanguage, href: string, open: OpenApp): SafeHtml {
  const texts = TEXTS[lang];
  return html`<p><a class="button" href="${href}"${open === "never" ? "" : html` data-open-app="${open}"`}>${texts.openApp}</a></p>
<p class="muted">${texts.openAppHint}</p>`;
}

function successView(ctx: BillingContext, lang: PageLanguage, sessionId: string, outcome: CheckoutOutcome): PageView {
  const texts = TEXTS[lang];
  const href = appLink(ctx.config.appDeepLink, "billing/success");
  if (outcome.state === "unknown") {
    return {
      title: texts.neutral.title,
      main: html`<h1>${texts.neutral.title}</h1>\n<p>${texts.neutral.text}</p>\n${openAppBlock(lang, href, "never")}`,
    };
  }
  if (outcome.state === "active") {
    const status = withPlan(texts.success.active, outcome.plan);
    return {
      title: texts.success.title,
      main: html`<h1>${texts.success.title}</h1>
<p class="status" role="status">${status}</p>
${openAppBlock(lang, href, "now")}`,
    };
  }
  const pollUrl = `${BILLING_PAGES_PREFIX}${CHECKOUT_STATUS_PATH}?session_id=${encodeURIComponent(sessionId)}`;
  return {
    title: texts.success.title,
    main: html`<h1>${texts.success.title}</h1>
<p class="status" role="status" aria-live="polite" data-poll-url="${pollUrl}" data-poll-interval-ms="${POLL_INTERVAL_MS}" data-poll-attempts="${POLL_ATTEMPTS}" data-text-active="${texts.success.active}" data-text-unknown="${texts.neutral.text}" data-text-timeout="${texts.success.timeout}">${texts.success.pending}</p>
${openAppBlock(lang, href, "when-done")}`,
  };
}

/** A page that only says where the browser came back from, and offers the app. */
function returnView(lang: PageLanguage, texts: { title: string; text: string }, href: string): PageView {
  return {
    title: texts.title,
    main: html`<h1>${texts.title}</h1>\n<p>${texts.text}</p>\n${openAppBlock(lang, href, "now")}`,
  };
}

/** The billing service's pages: the registry handed to the shared pages plugin. */
export function billingPageRegistry(ctx: BillingContext): { pages: PageDefinition[]; endpoints: PageEndpoint[] } {
  const deepLink = ctx.config.appDeepLink;
  const sessionIdOf = (url: URL) => url.searchParams.get("session_id") ?? "";
  return {
    pages: [
      {
        path: "/success",
        async render({ url, lang }) {
          const sessionId = sessionIdOf(url);
          return successView(ctx, lang, sessionId, await checkoutOutcome(ctx, sessionId));
        },
      },
      {
        path: "/cancel",
        render: ({ lang }) => returnView(lang, TEXTS[lang].cancel, appLink(deepLink, "billing/cancel")),
      },
      {
        // The customer portal's return URL is the prefix itself (PUBLIC_URL/billing).
        path: "",
        render: ({ lang }) => returnView(lang, TEXTS[lang].portal, appLink(deepLink, "billing/portal")),
      },
    ],
    endpoints: [
      {
        path: CHECKOUT_STATUS_PATH,
        async answer({ url }) {
          const outcome = await checkoutOutcome(ctx, sessionIdOf(url));
          return outcome.state === "active" ? { state: outcome.state, plan: PLAN_NAMES[outcome.plan] } : outcome;
        },
      },
    ],
  };
}

/** The pages as an Elysia plugin, mounted beside the API by the billing service. */
export function billingPages(ctx: BillingContext) {
  return pagesPlugin({
    name: "billing-pages",
    prefix: BILLING_PAGES_PREFIX,
    ...billingPageRegistry(ctx),
    platform: ctx.platform,
    limiter: ctx.limiter,
    logger: ctx.logger,
    requestsPerMinute: PAGES_PER_MINUTE,
  });
}
