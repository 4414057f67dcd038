import { appLink } from "../../shared/pages/app-link";
import { html, type SafeHtml } from "../../shared/pages/html";
import type { PageLanguage } from "../../shared/pages/i18n";
import type { PageView } from "../../shared/pages/plugin";
import { TEXTS } from "./texts";

/**
 * What a mailed token may look like in a URL: the characters a query carries unencoded, of a
 * length ours can have. Anything else (a link cut short by a mail program, a tampered one) gets the
 * broken-link page at once, without asking the database or putting it into a form.
 */
const TOKEN = /^[A-Za-z0-9._~-]{16,200}$/;

export const isTokenShaped = (token: string | null | undefined): token is string =>
  typeof token === "string" && TOKEN.test(token);

/** The app's screens the account pages open, each a path after APP_DEEP_LINK (docs/pages.md). */
export const APP_PATHS = {
  account: "account",
  passwordChanged: "account/password-changed",
  forgotPassword: "account/forgot-password",
  emailVerified: "account/email-verified",
  verifyEmail: "account/verify-email",
} as const;

/** The reset handed to the app with its token: the app asks for the new password itself. */
export const resetHandoffLink = (deepLink: string, token: string): string =>
  `${appLink(deepLink, "reset")}?token=${encodeURIComponent(token)}`;

/** The open-the-app button and what to do when nothing happens. */
export function openAppBlock(lang: PageLanguage, href: string): SafeHtml {
  const texts = TEXTS[lang];
  return html`<p><a class="button" href="${href}">${texts.openApp}</a></p>
<p class="muted">${texts.openAppHint}</p>`;
}

/** A page that says how something ended and offers the app's screen for what comes next. */
export function outcomeView(
  lang: PageLanguage,
  outcome: { title: string; text: string },
  href: string,
  status = 200,
): PageView {
  const role = status < 400 ? "status" : "alert";
  return {
    status,
    title: outcome.title,
    main: html`<h1>${outcome.title}</h1>
<p class="${status < 400 ? "status" : "error"}" role="${role}">${outcome.text}</p>
${openAppBlock(lang, href)}`,
  };
}

/** A link with no usable token: nothing was checked or spent. */
export const brokenLinkView = (lang: PageLanguage, deepLink: string): PageView =>
  outcomeView(lang, TEXTS[lang].brokenLink, appLink(deepLink, APP_PATHS.account), 400);
