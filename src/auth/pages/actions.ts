import type { ClientInfo } from "../../shared/verb";
import type { AuthContext } from "../context";
import { type EmailTokenPurpose, findLiveToken } from "../email-tokens";
import { verifyEmail } from "../email-verify";
import { resetPassword } from "../password-reset";

/**
 * What the account pages ask of the account lifecycle: the verbs the API's routes call
 * (`POST /api/v1/auth/password/reset`, `POST /api/v1/auth/email/verify`), with the same refusals as
 * ServiceErrors: 400 for a token that is expired, used or unknown, 422 for a password the rules
 * refuse, 409 for an address another account took meanwhile, 429 and 503 for limits and load.
 */
export interface AccountActions {
  resetPassword(input: { token: string; password: string }, client: ClientInfo): Promise<void>;
  verifyEmail(input: { token: string }, client: ClientInfo): Promise<void>;
  /** Whether a link's token would still be taken, without spending it (a page's GET changes nothing). */
  isLive(link: AccountLink, token: string): Promise<boolean>;
}

export type AccountLink = "reset" | "verify";

/** The tokens each link may carry: a confirmation link serves a sign-up's address and a new one alike. */
const PURPOSES: Record<AccountLink, EmailTokenPurpose[]> = {
  reset: ["password_reset"],
  verify: ["email_verify", "email_change"],
};

/** The account pages' actions: the very verbs of the API, called in the process. */
export function accountActions(ctx: AuthContext): AccountActions {
  return {
    resetPassword: (input, client) => resetPassword({ ctx, input, client }),
    async verifyEmail(input, client) {
      await verifyEmail({ ctx, input, client });
    },
    isLive: async (link, token) => (await findLiveToken(ctx.db, token, PURPOSES[link])) !== undefined,
  };
}
