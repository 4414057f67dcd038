import type { AuthUser } from "./auth/verifier";

/** What the transport knows of the caller beyond the token: the client address, for per-IP limits. */
export interface ClientInfo {
  ip: string;
  /** The User-Agent header (auth names a session after it when the client gives no device name). */
  userAgent?: string;
  /** The Accept-Language header (register picks the language of the account's mails from it). */
  acceptLanguage?: string;
}

/**
 * The one argument of a verb a signed-in user calls: the service's context, the verified user,
 * the validated input. A verb that needs the client address narrows `client` to required
 * (`VerbArgs<C, I> & { client: ClientInfo }`), so a caller cannot forget it.
 */
export interface VerbArgs<C, I = undefined> {
  ctx: C;
  user: AuthUser;
  input: I;
  client?: ClientInfo;
}

/** The one argument of a verb without a token (register, login, refresh, a signed webhook). */
export interface PublicVerbArgs<C, I = undefined> {
  ctx: C;
  input: I;
  client?: ClientInfo;
}
