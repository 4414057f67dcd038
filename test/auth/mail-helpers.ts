import type { PlatformOverrides, TestContext } from "../../src/shared/testing";
import { startTestSmtpServer, type TestSmtpOptions, type TestSmtpServer } from "../../src/shared/testing/smtp";
import { startAuth } from "./helpers";

/** The outbox polled and retried fast, so a test waits for mails in milliseconds. */
export const FAST_MAIL = { MAIL_OUTBOX_INTERVAL_MS: "25", MAIL_RETRY_BASE_MS: "100", MAIL_RETRY_MAX_MS: "400" };

/**
 * Auth sending through a real SMTP server the test owns (stopped with the context). Every auth
 * instance of one context shares its database, so any of them may send any mail (they are
 * replicas): a second instance must be given the first one's server as `relay`.
 */
export async function startAuthWithSmtp(
  ctx: TestContext,
  overrides: PlatformOverrides & { smtp?: TestSmtpOptions; relay?: TestSmtpServer } = {},
): Promise<Awaited<ReturnType<typeof startAuth>> & { smtp: TestSmtpServer }> {
  const smtp = overrides.relay ?? (await startTestSmtpServer(overrides.smtp));
  if (!overrides.relay) ctx.defer(() => smtp.close());
  const server = await startAuth(ctx, { ...overrides, env: { SMTP_URL: smtp.url, ...FAST_MAIL, ...overrides.env } });
  return { ...server, smtp };
}

export const mailTo = (address: string, subject?: RegExp) => (mail: { to: string[]; subject: string }) =>
  mail.to.includes(address) && (subject === undefined || subject.test(mail.subject));

/** The value of one series on /metrics, written as exposed: `auth_mails_total{template="…",outcome="sent"}`. */
export async function metricValue(metricsUrl: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((each) => each.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
