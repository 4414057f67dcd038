// Shared by the account pages' tests: the real auth service (real PostgreSQL and Redis) sending its
// mails over SMTP to the test SMTP server (src/shared/testing/smtp.ts), and the tokens taken from
// those mails as a user would: register, ask for a reset, open the mail.
import { eq } from "drizzle-orm";
import { issueEmailToken, newEmailToken } from "../../src/auth/email-tokens";
import { users } from "../../src/auth/tables";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { type ReceivedMail, startTestSmtpServer, type TestSmtpServer } from "../../src/shared/testing/smtp";
import { PASSWORD, post, randomIp, registerUser, startAuth, uniqueEmail } from "./helpers";

export interface AccountHarness {
  ctx: TestContext;
  url: string;
  platform: Platform;
  /** Where the service's mails arrive. */
  smtp: TestSmtpServer;
}

/** The auth service trusting one proxy hop (each test speaks from its own address), mailing over SMTP. */
export async function startAccountPages(env: Record<string, string> = {}): Promise<AccountHarness> {
  const ctx = await createTestContext();
  const smtp = await startTestSmtpServer();
  ctx.defer(() => smtp.close());
  const server = await startAuth(ctx, {
    env: { TRUSTED_PROXY_HOPS: "1", SMTP_URL: smtp.url, MAIL_OUTBOX_INTERVAL_MS: "20", ...env },
  });
  return { ctx, url: server.url, platform: server.platform, smtp };
}

export type MailedLink = "reset" | "verify";

/**
 * The path and query of the `kind` link in the mail to `email` that arrives after `after` such
 * mails (waiting for the outbox worker to send it), as its reader would open it:
 * `/account/reset?token=…`.
 */
export async function mailedLink(h: AccountHarness, email: string, kind: MailedLink, after = 0): Promise<string> {
  const links = await eventually(
    () => linksTo(h.smtp.mails, email, kind),
    (found) => found.length > after,
    10_000,
  );
  const link = links[after];
  if (!link) throw new Error(`no ${kind} mail to ${email} (${h.smtp.mails.length} received)`);
  return link;
}

function linksTo(mails: ReceivedMail[], email: string, kind: MailedLink): string[] {
  const pattern = new RegExp(`https?://[^/\\s]+(/account/${kind}\\?token=[A-Za-z0-9_-]+)`);
  return mails.flatMap((mail) => {
    if (!mail.to.includes(email)) return [];
    const match = pattern.exec(mail.text);
    return match?.[1] ? [match[1]] : [];
  });
}

export const tokenOf = (link: string) => new URL(link, "http://page.test").searchParams.get("token") as string;

export interface Account {
  id: string;
  email: string;
  password: string;
}

/** A user registered through the API; its confirmation mail is on its way. */
export async function newAccount(h: AccountHarness): Promise<Account> {
  const email = uniqueEmail();
  const session = await registerUser(h.url, email);
  return { id: session.user.id, email, password: PASSWORD };
}

/** Asks for a reset through the API and returns the link of the mail it sends. */
export async function resetLinkFor(h: AccountHarness, account: Account): Promise<string> {
  const before = linksTo(h.smtp.mails, account.email, "reset").length;
  const asked = await post(h.url, "/password/forgot", { email: account.email }, { "x-forwarded-for": randomIp() });
  if (asked.status !== 202) throw new Error(`forgot failed: ${asked.status} ${await asked.text()}`);
  return mailedLink(h, account.email, "reset", before);
}

/**
 * A live token stored straight into auth.email_tokens (its SHA-256, as the service stores it), for
 * the race tests, which need hundreds: the mails' path is the same code, exercised above.
 */
export async function storedToken(h: AccountHarness, account: Account, purpose: "password_reset" | "email_verify") {
  const token = newEmailToken();
  await issueEmailToken(h.platform.db, { userId: account.id, purpose, email: account.email, ttlS: 600, token });
  return token;
}

/** Signs in through the API: the status only. */
export async function loginStatus(h: AccountHarness, email: string, password: string): Promise<number> {
  const response = await post(h.url, "/login", { email, password }, { "x-forwarded-for": randomIp() });
  await response.body?.cancel();
  return response.status;
}

export async function emailVerified(h: AccountHarness, userId: string): Promise<boolean> {
  const [row] = await h.platform.db.select({ at: users.emailVerifiedAt }).from(users).where(eq(users.id, userId));
  return row?.at != null;
}
