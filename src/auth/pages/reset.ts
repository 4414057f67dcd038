import { ServiceError } from "../../shared/errors";
import { appLink } from "../../shared/pages/app-link";
import { html } from "../../shared/pages/html";
import type { PageLanguage } from "../../shared/pages/i18n";
import type { PageDefinition, PageForm, PageView } from "../../shared/pages/plugin";
import type { AccountActions } from "./actions";
import { TEXTS, WEAK_PASSWORD_IT } from "./texts";
import { APP_PATHS, brokenLinkView, isTokenShaped, outcomeView, resetHandoffLink } from "./views";

export const RESET_PATH = "/reset";
export const RESET_DONE_PATH = "/reset/done";

/** The same bounds the API puts on a password; the strength rules are the API's (passwordProblem). */
const PASSWORD_MIN = 10;
const PASSWORD_MAX = 256;

interface FormState {
  /** Why the last submission was refused, shown above the fields; the fields start empty again. */
  error?: string;
}

/**
 * The form. It posts to the page's path without the query: the token travels in the body, so it
 * appears in no URL but the one the mail opened (and no access log sees it twice). Without the
 * script it works the same; the browser checks the length before sending, the server everything.
 */
function resetFormView(
  lang: PageLanguage,
  prefix: string,
  deepLink: string,
  token: string,
  state: FormState,
): PageView {
  const texts = TEXTS[lang].reset;
  const invalid = state.error !== undefined;
  const describedBy = invalid ? "reset-error password-hint" : "password-hint";
  const passwordField = (id: string, label: string, hint: boolean) => html`<div class="field">
<label for="${id}">${label}</label>
<input id="${id}" name="${id}" type="password" autocomplete="new-password" required minlength="${PASSWORD_MIN}" maxlength="${PASSWORD_MAX}"${hint ? html` aria-describedby="${describedBy}"` : ""}${invalid ? html` aria-invalid="true"` : ""}${invalid && hint ? html` autofocus` : ""}>
${hint ? html`<p class="muted" id="password-hint">${texts.passwordHint}</p>` : ""}
</div>`;
  return {
    status: invalid ? 422 : 200,
    title: texts.title,
    main: html`<h1>${texts.title}</h1>
${invalid ? html`<p class="error" role="alert" id="reset-error">${state.error}</p>` : html`<p>${texts.intro}</p>`}
<form method="post" action="${prefix}${RESET_PATH}">
<input type="hidden" name="token" value="${token}">
${passwordField("password", texts.password, true)}
${passwordField("confirm", texts.confirm, false)}
<button class="button" type="submit">${texts.submit}</button>
</form>
<section class="handoff" aria-labelledby="handoff-title">
<h2 id="handoff-title">${texts.handoffTitle}</h2>
<p>${texts.handoffText}</p>
<p><a class="button secondary" href="${resetHandoffLink(deepLink, token)}">${texts.handoffButton}</a></p>
</section>`,
  };
}

/** The API's reason a password is refused, in the page's language where a translation exists. */
export function weakPasswordMessage(lang: PageLanguage, reason: string): string {
  const italian = lang === "it" ? WEAK_PASSWORD_IT[reason] : undefined;
  const words = italian ?? reason;
  return `${TEXTS[lang].reset.weak} ${words}${/[.!?]$/.test(words) ? "" : "."}`;
}

const invalidView = (lang: PageLanguage, deepLink: string) =>
  outcomeView(lang, TEXTS[lang].reset.invalid, appLink(deepLink, APP_PATHS.forgotPassword), 400);

/** `/account/reset?token=…` (the form), `/account/reset/done`, and the form's submission. */
export function resetPages(
  prefix: string,
  deepLink: string,
  actions: AccountActions,
): { pages: PageDefinition[]; forms: PageForm[] } {
  return {
    pages: [
      {
        path: RESET_PATH,
        async render({ url, lang }) {
          const token = url.searchParams.get("token");
          if (!isTokenShaped(token)) return brokenLinkView(lang, deepLink);
          // Read, not spent: a dead link says so before anyone types a password twice.
          if (!(await actions.isLive("reset", token))) return invalidView(lang, deepLink);
          return resetFormView(lang, prefix, deepLink, token, {});
        },
      },
      {
        path: RESET_DONE_PATH,
        render: ({ lang }) => outcomeView(lang, TEXTS[lang].reset.done, appLink(deepLink, APP_PATHS.passwordChanged)),
      },
    ],
    forms: [
      {
        path: RESET_PATH,
        async submit({ fields, lang, client }) {
          const token = fields.get("token");
          const password = fields.get("password") ?? "";
          if (!isTokenShaped(token)) return brokenLinkView(lang, deepLink);
          // Checked here, not by the API: a typo in one of the two fields should not cost the token.
          if (password !== (fields.get("confirm") ?? "")) {
            return resetFormView(lang, prefix, deepLink, token, { error: TEXTS[lang].reset.mismatch });
          }
          try {
            await actions.resetPassword({ token, password }, client);
          } catch (error) {
            if (!(error instanceof ServiceError)) throw error;
            if (error.status === 400) return invalidView(lang, deepLink);
            if (error.status === 422) {
              return resetFormView(lang, prefix, deepLink, token, { error: weakPasswordMessage(lang, error.message) });
            }
            throw error;
          }
          // A reload of the outcome must not post the spent token again.
          return { seeOther: `${prefix}${RESET_DONE_PATH}` };
        },
      },
    ],
  };
}
