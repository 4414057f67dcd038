/**
 * The mails auth sends, in every language a user can choose (`users.locale`), each as plain text
 * and as HTML. The HTML has no external resources (no images, fonts or stylesheets to fetch, so
 * opening a mail tells no one anything) and escapes every value it is given.
 */

export const MAIL_LOCALES = ["en", "it"] as const;
export type MailLocale = (typeof MAIL_LOCALES)[number];

/** What each template needs; stored as the outbox row's payload until the mail is sent. */
export interface MailPayloads {
  /** `url` carries the single-use token; `expires_minutes` is its lifetime. */
  password_reset: { url: string; expires_minutes: number };
  password_changed: Record<string, never>;
  email_verify: { url: string; expires_hours: number };
  /** To the new address: the link that makes it the account's address. */
  email_change_confirm: { url: string; expires_hours: number };
  /** To the old address: a change was asked for; `new_email` is masked (`n•••@example.com`). */
  email_change_notice: { new_email: string };
  account_deleted: Record<string, never>;
  /** `url` is where the archive is downloaded (signed in). */
  export_ready: { export_id: string; url: string };
}
export type MailTemplate = keyof MailPayloads;
export const MAIL_TEMPLATES = [
  "password_reset",
  "password_changed",
  "email_verify",
  "email_change_confirm",
  "email_change_notice",
  "account_deleted",
  "export_ready",
] as const satisfies readonly MailTemplate[];

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** One paragraph of a mail, or the button-like link. */
type Block = { p: string } | { link: string; label: string };

interface Content {
  subject: string;
  blocks: Block[];
}

const SIGNATURE: Record<MailLocale, string> = { en: "The Adiuva team", it: "Il team di Adiuva" };
const NOT_YOU: Record<MailLocale, string> = {
  en: "If you did not ask for this, you can ignore this mail.",
  it: "Se non l'hai richiesto tu, puoi ignorare questa mail.",
};
const SECURE_NOW: Record<MailLocale, string> = {
  en: "If this was not you, reset your password at once and contact support.",
  it: "Se non sei stato tu, reimposta subito la password e contatta l'assistenza.",
};

type Writers = { [T in MailTemplate]: Record<MailLocale, (payload: MailPayloads[T]) => Content> };

const WRITERS: Writers = {
  password_reset: {
    en: ({ url, expires_minutes }) => ({
      subject: "Reset your Adiuva password",
      blocks: [
        { p: "Someone asked to reset the password of your Adiuva account." },
        { link: url, label: "Choose a new password" },
        { p: `The link works once, for ${expires_minutes} minutes. ${NOT_YOU.en}` },
      ],
    }),
    it: ({ url, expires_minutes }) => ({
      subject: "Reimposta la password di Adiuva",
      blocks: [
        { p: "È stato chiesto di reimpostare la password del tuo account Adiuva." },
        { link: url, label: "Scegli una nuova password" },
        { p: `Il link vale una sola volta, per ${expires_minutes} minuti. ${NOT_YOU.it}` },
      ],
    }),
  },
  password_changed: {
    en: () => ({
      subject: "Your Adiuva password was changed",
      blocks: [
        { p: "The password of your Adiuva account was just changed, and every device was signed out." },
        { p: SECURE_NOW.en },
      ],
    }),
    it: () => ({
      subject: "La password di Adiuva è stata cambiata",
      blocks: [
        {
          p: "La password del tuo account Adiuva è appena stata cambiata e tutti i dispositivi sono stati disconnessi.",
        },
        { p: SECURE_NOW.it },
      ],
    }),
  },
  email_verify: {
    en: ({ url, expires_hours }) => ({
      subject: "Confirm your e-mail address for Adiuva",
      blocks: [
        { p: "Confirm that this is the address of your Adiuva account." },
        { link: url, label: "Confirm my address" },
        { p: `The link works for ${expires_hours} hours. ${NOT_YOU.en}` },
      ],
    }),
    it: ({ url, expires_hours }) => ({
      subject: "Conferma il tuo indirizzo e-mail per Adiuva",
      blocks: [
        { p: "Conferma che questo è l'indirizzo del tuo account Adiuva." },
        { link: url, label: "Conferma il mio indirizzo" },
        { p: `Il link vale ${expires_hours} ore. ${NOT_YOU.it}` },
      ],
    }),
  },
  email_change_confirm: {
    en: ({ url, expires_hours }) => ({
      subject: "Confirm the new e-mail address of your Adiuva account",
      blocks: [
        { p: "Your Adiuva account asked to use this address from now on. It changes once you confirm." },
        { link: url, label: "Use this address" },
        { p: `The link works for ${expires_hours} hours. ${NOT_YOU.en}` },
      ],
    }),
    it: ({ url, expires_hours }) => ({
      subject: "Conferma il nuovo indirizzo e-mail del tuo account Adiuva",
      blocks: [
        { p: "Il tuo account Adiuva ha chiesto di usare d'ora in poi questo indirizzo. Cambierà quando lo confermi." },
        { link: url, label: "Usa questo indirizzo" },
        { p: `Il link vale ${expires_hours} ore. ${NOT_YOU.it}` },
      ],
    }),
  },
  email_change_notice: {
    en: ({ new_email }) => ({
      subject: "The e-mail address of your Adiuva account is changing",
      blocks: [
        { p: `Someone signed in to your Adiuva account asked to change its address to ${new_email}.` },
        { p: "Nothing changes until the new address is confirmed." },
        { p: SECURE_NOW.en },
      ],
    }),
    it: ({ new_email }) => ({
      subject: "L'indirizzo e-mail del tuo account Adiuva sta cambiando",
      blocks: [
        { p: `Dal tuo account Adiuva è stato chiesto di cambiare l'indirizzo in ${new_email}.` },
        { p: "Non cambia nulla finché il nuovo indirizzo non viene confermato." },
        { p: SECURE_NOW.it },
      ],
    }),
  },
  account_deleted: {
    en: () => ({
      subject: "Your Adiuva account was deleted",
      blocks: [
        { p: "Your Adiuva account and its data have been deleted, as you asked." },
        { p: "This is the last mail you will get from us. Thank you for having used Adiuva." },
      ],
    }),
    it: () => ({
      subject: "Il tuo account Adiuva è stato eliminato",
      blocks: [
        { p: "Il tuo account Adiuva e i suoi dati sono stati eliminati, come hai chiesto." },
        { p: "Questa è l'ultima mail che riceverai da noi. Grazie per aver usato Adiuva." },
      ],
    }),
  },
  export_ready: {
    en: ({ url }) => ({
      subject: "Your Adiuva data export is ready",
      blocks: [
        { p: "The export of your Adiuva data you asked for is ready." },
        { link: url, label: "Download my data" },
        { p: "Download it while signed in, within 24 hours; after that it is deleted." },
      ],
    }),
    it: ({ url }) => ({
      subject: "L'esportazione dei tuoi dati Adiuva è pronta",
      blocks: [
        { p: "L'esportazione dei tuoi dati Adiuva che hai chiesto è pronta." },
        { link: url, label: "Scarica i miei dati" },
        { p: "Scaricala da utente autenticato entro 24 ore; dopo viene eliminata." },
      ],
    }),
  },
};

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);

/** Renders a template in a locale; an unknown locale falls back to English. */
export function renderMail<T extends MailTemplate>(
  template: T,
  locale: string,
  payload: MailPayloads[T],
): RenderedMail {
  const lang: MailLocale = isMailLocale(locale) ? locale : "en";
  const write = WRITERS[template][lang] as (payload: MailPayloads[T]) => Content;
  const { subject, blocks } = write(payload);
  return { subject, text: toText(blocks, lang), html: toHtml(subject, blocks, lang) };
}

export const isMailLocale = (value: string): value is MailLocale => (MAIL_LOCALES as readonly string[]).includes(value);

function toText(blocks: Block[], lang: MailLocale): string {
  const lines = blocks.map((block) => ("p" in block ? block.p : `${block.label}:\n${block.link}`));
  return `${[...lines, `-- \n${SIGNATURE[lang]}`].join("\n\n")}\n`;
}

function toHtml(subject: string, blocks: Block[], lang: MailLocale): string {
  const body = blocks
    .map((block) =>
      "p" in block
        ? `<p>${escapeHtml(block.p)}</p>`
        : `<p><a href="${escapeHtml(block.link)}" style="display:inline-block;padding:10px 16px;background:#1f4fd8;color:#ffffff;text-decoration:none;border-radius:6px">${escapeHtml(block.label)}</a></p>\n<p style="font-size:12px;color:#555555;word-break:break-all">${escapeHtml(block.link)}</p>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="${lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(subject)}</title></head>
<body style="font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5;color:#1a1a1a;max-width:560px;margin:0 auto;padding:24px">
${body}
<p style="color:#555555">${escapeHtml(SIGNATURE[lang])}</p>
</body>
</html>
`;
}
