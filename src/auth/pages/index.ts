import { appLink } from "../../shared/pages/app-link";
import { type PageDefinition, type PageForm, pagesPlugin } from "../../shared/pages/plugin";
import type { AuthContext } from "../context";
import type { AccountActions } from "./actions";
import { resetPages } from "./reset";
import { TEXTS } from "./texts";
import { verifyPages } from "./verify";
import { APP_PATHS, outcomeView } from "./views";

/**
 * Where the account pages live: the links auth mails open PUBLIC_URL + `/account/reset` and
 * `/account/verify` (PASSWORD_RESET_URL, EMAIL_VERIFY_URL), and Traefik routes `/account` and
 * `/account/…` to this service.
 */
export const ACCOUNT_PAGES_PREFIX = "/account" as const;

/**
 * Page loads and form posts per minute from one address. A reset takes a page and a post or two;
 * each post of a password costs an argon2 hash, so the budget is half the billing pages'.
 */
export const ACCOUNT_PAGES_PER_MINUTE = 30;

/** The account pages: the registry handed to the shared pages plugin. */
export function accountPageRegistry(
  deepLink: string,
  actions: AccountActions,
): { pages: PageDefinition[]; forms: PageForm[] } {
  const reset = resetPages(ACCOUNT_PAGES_PREFIX, deepLink, actions);
  const verify = verifyPages(ACCOUNT_PAGES_PREFIX, deepLink, actions);
  return {
    pages: [
      {
        // `/account` itself, for whoever shortens a link by hand: the account lives in the app.
        path: "",
        render: ({ lang }) => outcomeView(lang, TEXTS[lang].account, appLink(deepLink, APP_PATHS.account)),
      },
      ...reset.pages,
      ...verify.pages,
    ],
    forms: [...reset.forms, ...verify.forms],
  };
}

/** The pages as an Elysia plugin, mounted beside the API by the auth service. */
export function accountPages(ctx: AuthContext, actions: AccountActions) {
  return pagesPlugin({
    name: "account-pages",
    prefix: ACCOUNT_PAGES_PREFIX,
    ...accountPageRegistry(ctx.env.APP_DEEP_LINK, actions),
    platform: ctx.platform,
    limiter: ctx.limiter,
    logger: ctx.logger,
    requestsPerMinute: ACCOUNT_PAGES_PER_MINUTE,
  });
}
