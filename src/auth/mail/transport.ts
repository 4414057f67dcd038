import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import type { Env } from "../../shared/env";
import type { Logger } from "../../shared/logger";

/** One mail as the outbox worker hands it over: rendered, addressed, with its outbox id. */
export interface OutgoingMail {
  id: string;
  template: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The links the mail carries, for the development log. */
  links: string[];
}

/** Where mails leave: SMTP, or (outside production, with no SMTP_URL) files under DATA_DIR/mail. */
export interface Mailer {
  kind: "smtp" | "files";
  /** Resolves once the relay took the mail (or the file is written); throws otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

/** The sender used where MAIL_FROM is not set (development and tests; production requires it). */
export const DEFAULT_MAIL_FROM = "Adiuva <no-reply@localhost>";

/**
 * The mailer the environment asks for. SMTP keeps a small pool of connections (a backlog drains
 * without a handshake per mail); a connection the relay dropped is replaced on the next mail.
 */
export function createMailer(env: Env, logger: Logger): Mailer {
  const from = env.MAIL_FROM ?? DEFAULT_MAIL_FROM;
  if (env.SMTP_URL) return smtpMailer(env.SMTP_URL, from);
  return fileMailer(join(env.DATA_DIR, "mail"), from, logger);
}

function smtpMailer(url: string, from: string): Mailer {
  const transport = nodemailer.createTransport({
    url,
    pool: true,
    maxConnections: 2,
    maxMessages: 100,
    // Bounded so a relay that accepts the connection and then stalls cannot hold the worker.
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  } as nodemailer.TransportOptions);
  return {
    kind: "smtp",
    async send(mail) {
      await transport.sendMail(message(from, mail));
    },
    close: () => transport.close(),
  };
}

/**
 * Development: each mail becomes a real RFC 822 message in `dir` (open it in any mail program),
 * and its links are logged at info; tokens in them are redacted by the log pipeline like any
 * secret-shaped text, so the file is where the working link is.
 */
function fileMailer(dir: string, from: string, logger: Logger): Mailer {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  return {
    kind: "files",
    async send(mail) {
      const info = await transport.sendMail(message(from, mail));
      mkdirSync(dir, { recursive: true });
      // Digits only (20261130031542123): sorts by time, and the log's redaction leaves the name alone.
      const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 17);
      const file = join(dir, `${stamp}-${mail.id}.eml`);
      writeFileSync(file, info.message as Buffer);
      logger.info({ template: mail.template, file, links: mail.links }, "mail written to a file (no SMTP_URL)");
    },
    close: () => transport.close(),
  };
}

function message(from: string, mail: OutgoingMail): nodemailer.SendMailOptions {
  return {
    from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    // A stable id per outbox row: a mail sent twice (a crash between SMTP's answer and the
    // commit) carries the same Message-ID, which lets receiving systems drop the duplicate.
    messageId: `<${mail.id}@adiuva.mail>`,
    headers: { "Auto-Submitted": "auto-generated" },
  };
}
