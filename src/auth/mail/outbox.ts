import type { Database } from "../../shared/db";
import { mailOutbox } from "../tables";
import { isMailLocale, type MailPayloads, type MailTemplate } from "./templates";

export interface MailToSend<T extends MailTemplate> {
  /** The account the mail is about; kept after the account is gone (no foreign key). */
  userId: string | null;
  to: string;
  template: T;
  /** `users.locale`; anything else is sent in English. */
  locale: string;
  payload: MailPayloads[T];
}

/**
 * Writes a mail into the outbox, inside the caller's transaction: it is sent if and only if what
 * causes it commits (the outbox worker picks it up, see worker.ts). Returns the outbox row's id.
 */
export async function enqueueMail<T extends MailTemplate>(tx: Database, mail: MailToSend<T>): Promise<string> {
  const [row] = await tx
    .insert(mailOutbox)
    .values({
      userId: mail.userId,
      toAddress: mail.to,
      template: mail.template,
      locale: isMailLocale(mail.locale) ? mail.locale : "en",
      payload: mail.payload,
    })
    .returning({ id: mailOutbox.id });
  if (!row) throw new Error("mail outbox insert returned no row");
  return row.id;
}
