// Every mail in every language, as text and HTML: complete, escaped, self-contained; and the
// development fallback that writes them as .eml files when no SMTP relay is configured.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import { MAIL_LOCALES, MAIL_TEMPLATES, type MailPayloads, renderMail } from "../../src/auth/mail/templates";
import { createMailer } from "../../src/auth/mail/transport";
import { loadEnv } from "../../src/shared/env";
import { redactText } from "../../src/shared/log-redaction";
import { captureLogger, createTestContext, eventually } from "../../src/shared/testing";
import { PASSWORD, post, randomIp, startAuth, uniqueEmail } from "./helpers";

const ID = "8d4c3822-ab38-4cb9-8919-8a8091235922";
const URL_WITH_MARKUP = `https://example.com/r?a=1&b="><script>alert(1)</script>`;
const PAYLOADS: MailPayloads = {
  password_reset: { url: URL_WITH_MARKUP, expires_minutes: 30 },
  password_changed: {},
  email_verify: { url: URL_WITH_MARKUP, expires_hours: 24 },
  email_change_confirm: { url: URL_WITH_MARKUP, expires_hours: 24 },
  email_change_notice: { new_email: `n•••@<b>example</b>.com` },
  account_deleted: {},
  export_ready: { export_id: "e1", url: URL_WITH_MARKUP },
};

describe("templates", () => {
  for (const template of MAIL_TEMPLATES) {
    for (const locale of MAIL_LOCALES) {
      test(`${template} (${locale}): subject, text and HTML; values escaped; nothing fetched from elsewhere`, () => {
        const mail = renderMail(template, locale, PAYLOADS[template] as never);
        expect(mail.subject.length).toBeGreaterThan(10);
        expect(mail.text).toContain(locale === "it" ? "Il team di Adiuva" : "The Adiuva team");
        expect(mail.html).toContain(`<html lang="${locale}">`);
        expect(mail.html).not.toContain("<script>");
        expect(mail.html).not.toContain("<b>");
        expect(mail.html).not.toMatch(/<img|<link|src=|url\(|@import/i);
        const payload = PAYLOADS[template] as { url?: string };
        if (payload.url) {
          expect(mail.text).toContain(payload.url);
          expect(mail.html).toContain(
            'href="https://example.com/r?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"',
          );
        }
      });
    }
  }

  test("the two languages differ, and an unknown locale falls back to English", () => {
    const en = renderMail("password_reset", "en", PAYLOADS.password_reset);
    const it = renderMail("password_reset", "it", PAYLOADS.password_reset);
    expect(it.subject).not.toBe(en.subject);
    expect(renderMail("password_reset", "fr", PAYLOADS.password_reset)).toEqual(en);
  });
});

describe("development fallback: .eml files under DATA_DIR/mail", () => {
  test("a real RFC 822 message, parseable, with the link; its path and links logged at info", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "mail-dev-"));
    try {
      const { logger, lines } = captureLogger();
      const mailer = createMailer(loadEnv({ SERVICE_NAME: "auth", DATA_DIR: dataDir }), logger);
      expect(mailer.kind).toBe("files");
      const rendered = renderMail("password_reset", "it", {
        url: "https://x.test/reset?token=abc",
        expires_minutes: 30,
      });
      await mailer.send({
        id: ID,
        template: "password_reset",
        to: "ada@example.com",
        ...rendered,
        links: ["https://x.test/reset?token=abc"],
      });
      mailer.close();
      const [file] = readdirSync(join(dataDir, "mail"));
      expect(file).toBe(`${file?.slice(0, 17)}-${ID}.eml`);
      expect(file).toMatch(/^\d{17}-/);
      const parsed = await simpleParser(readFileSync(join(dataDir, "mail", file as string)));
      expect(parsed.subject).toBe("Reimposta la password di Adiuva");
      expect(parsed.from?.value[0]).toMatchObject({ name: "Adiuva", address: "no-reply@localhost" });
      expect(parsed.messageId).toBe(`<${ID}@adiuva.mail>`);
      expect(parsed.text).toContain("https://x.test/reset?token=abc");
      expect(parsed.html).toContain("https://x.test/reset?token=abc");
      const line = lines.find((each) => each.msg === "mail written to a file (no SMTP_URL)");
      expect(line).toMatchObject({ level: 30, template: "password_reset", links: ["https://x.test/reset?token=abc"] });
      expect(String(line?.file)).toEndWith(".eml");
      // Under the default DATA_DIR the path survives the log pipeline's redaction (the token does not, by design).
      const logged = join(".data", "mail", String(file));
      expect(redactText(logged)).toBe(logged);
      expect(redactText("https://x.test/reset?token=qtzLLTnoMaldWqB9vqPoJOfKAUIvDzG9D39l3vzsH-8")).not.toContain(
        "qtzLL",
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("the service without SMTP_URL writes the sign-up confirmation as a file", async () => {
    const ctx = await createTestContext();
    const dataDir = mkdtempSync(join(tmpdir(), "mail-dev-"));
    try {
      const server = await startAuth(ctx, { env: { DATA_DIR: dataDir, MAIL_OUTBOX_INTERVAL_MS: "25" } });
      const email = uniqueEmail();
      const response = await post(
        server.url,
        "/register",
        { email, password: PASSWORD },
        { "x-forwarded-for": randomIp() },
      );
      expect(response.status).toBe(201);
      const files = await eventually(
        () => {
          try {
            return readdirSync(join(dataDir, "mail"));
          } catch {
            return [];
          }
        },
        (found) => found.length > 0,
      );
      const parsed = await simpleParser(readFileSync(join(dataDir, "mail", files[0] as string)));
      expect(parsed.to && "text" in parsed.to ? parsed.to.text : "").toBe(email);
      expect(parsed.text).toMatch(/http:\/\/localhost:8000\/account\/verify\?token=[A-Za-z0-9_-]{43}/);
    } finally {
      await ctx.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
