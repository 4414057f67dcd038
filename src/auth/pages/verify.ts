import { ServiceError } from "../../shared/errors";
import { appLink } from "../../shared/pages/app-link";
import { html } from "../../shared/pages/html";
import type { PageLanguage } from "../../shared/pages/i18n";
import type { PageDefinition, PageForm, PageView } from "../../shared/pages/plugin";
import type { AccountActions } from "./actions";
import { TEXTS } from "./texts";
import { APP_PATHS, brokenLinkView, isTokenShaped, outcomeView } from "./views";

export const VERIFY_PATH = "/verify";
export const VERIFY_DONE_PATH = "/verify/done";

/**
 * The confirmation asks for a button press; the GET that opens the page changes nothing. Mail
 * providers and link scanners fetch the links in a mail before (or instead of) the person reading
 * it: a GET that spent the token would confirm an address nobody looked at, and the owner's own
 * click would then find the link used. A scanner does not submit forms.
 */
function confirmView(lang: PageLanguage, prefix: string, token: string): PageView {
  const texts = TEXTS[lang].verify;
  return {
    title: texts.title,
    main: html`<h1>${texts.title}</h1>
<p>${texts.intro}</p>
<form method="post" action="${prefix}${VERIFY_PATH}">
<input type="hidden" name="token" value="${token}">
<button class="button" type="submit">${texts.submit}</button>
</form>`,
  };
}

/** `/account/verify?token=…` (the button), `/account/verify/done`, and the button's submission. */
export function verifyPages(
  prefix: string,
  deepLink: string,
  actions: AccountActions,
): { pages: PageDefinition[]; forms: PageForm[] } {
  const retry = appLink(deepLink, APP_PATHS.verifyEmail);
  const invalidView = (lang: PageLanguage) => outcomeView(lang, TEXTS[lang].verify.invalid, retry, 400);
  return {
    pages: [
      {
        path: VERIFY_PATH,
        async render({ url, lang }) {
          const token = url.searchParams.get("token");
          if (!isTokenShaped(token)) return brokenLinkView(lang, deepLink);
          // Looked up, never spent (see confirmView).
          if (!(await actions.isLive("verify", token))) return invalidView(lang);
          return confirmView(lang, prefix, token);
        },
      },
      {
        path: VERIFY_DONE_PATH,
        render: ({ lang }) => outcomeView(lang, TEXTS[lang].verify.done, appLink(deepLink, APP_PATHS.emailVerified)),
      },
    ],
    forms: [
      {
        path: VERIFY_PATH,
        async submit({ fields, lang, client }) {
          const token = fields.get("token");
          if (!isTokenShaped(token)) return brokenLinkView(lang, deepLink);
          try {
            await actions.verifyEmail({ token }, client);
          } catch (error) {
            if (!(error instanceof ServiceError)) throw error;
            if (error.status === 400) return invalidView(lang);
            if (error.status === 409) return outcomeView(lang, TEXTS[lang].verify.taken, retry, 409);
            throw error;
          }
          return { seeOther: `${prefix}${VERIFY_DONE_PATH}` };
        },
      },
    ],
  };
}
