// The outbox worker against a real SMTP server: retries while the relay is down, gives up on what
// cannot be delivered, never sends a mail twice from two replicas, and keeps nothing once sent.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { enqueueMail } from "../../src/auth/mail/outbox";
import { retryDelayMs } from "../../src/auth/mail/worker";
import { ConfigError, loadEnv } from "../../src/shared/env";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";
import { PASSWORD, post, randomIp, registerUser, startAuth, uniqueEmail } from "./helpers";
import { FAST_MAIL, mailTo, metricValue, startAuthWithSmtp } from "./mail-helpers";

let ctx: TestContext;
let auth: Awaited<ReturnType<typeof startAuthWithSmtp>>;
let sql: postgres.Sql;
const REFUSED = /^refused-/;
beforeAll(async () => {
  ctx = await createTestContext();
  sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());
  auth = await startAuthWithSmtp(ctx, {
    smtp: { credentials: { user: "adiuva", pass: "p@ss/word" }, refuse: (address) => REFUSED.test(address) },
  });
});
afterAll(() => ctx.close());

const series = (template: string, outcome: string) => `auth_mails_total{template="${template}",outcome="${outcome}"}`;
const metric = (name: string) => metricValue(auth.metricsUrl, name);
describe("delivery", () => {
  test("SMTP down, then back: the mail is retried with backoff and arrives; the metrics show it", async () => {
    const retriesBefore = (await metric(series("email_verify", "retry"))) ?? 0;
    const sentBefore = (await metric(series("email_verify", "sent"))) ?? 0;
    await auth.smtp.stop();
    const email = uniqueEmail();
    await registerUser(auth.url, email);
    const [{ id } = { id: "" }] = await sql<{ id: string }[]>`
      select id from auth.mail_outbox where to_address = ${email}`;
    expect(id).not.toBe("");

    const retried = await eventually(
      () => metric(series("email_verify", "retry")),
      (value) => (value ?? 0) >= retriesBefore + 2,
    );
    expect(retried).toBeGreaterThanOrEqual(retriesBefore + 2);
    expect(await metric("auth_mail_outbox_pending")).toBeGreaterThanOrEqual(1);
    expect(await metric("auth_mail_outbox_oldest_pending_seconds")).toBeGreaterThan(0);
    const [waiting] =
      await sql`select attempts, last_error, next_attempt_at, sent_at from auth.mail_outbox where id = ${id}`;
    expect(waiting?.sent_at).toBeNull();
    expect(waiting?.attempts).toBeGreaterThanOrEqual(2);
    expect(String(waiting?.last_error)).toContain("ECONNREFUSED");

    await auth.smtp.start();
    const mail = await auth.smtp.waitFor(mailTo(email));
    expect(mail.parsed.messageId).toBe(`<${id}@adiuva.mail>`);
    expect(
      await eventually(
        () => metric(series("email_verify", "sent")),
        (v) => (v ?? 0) > sentBefore,
      ),
    ).toBe(sentBefore + 1);
    // Once sent, nothing of the address or the link is kept.
    const [sent] = await eventually(
      () => sql`select * from auth.mail_outbox where id = ${id}`,
      (rows) => rows[0]?.sent_at !== null,
    );
    expect(sent).toMatchObject({ to_address: "", payload: {}, last_error: null, failed_at: null });
    expect(
      await eventually(
        () => metric("auth_mail_outbox_pending"),
        (v) => v === 0,
      ),
    ).toBe(0);
  }, 30_000);

  test("backoff doubles from MAIL_RETRY_BASE_MS up to MAIL_RETRY_MAX_MS", async () => {
    const env = loadEnv({ SERVICE_NAME: "auth", MAIL_RETRY_BASE_MS: "5000", MAIL_RETRY_MAX_MS: "900000" });
    expect([1, 2, 3, 4, 8, 9, 20].map((attempts) => retryDelayMs(env, attempts))).toEqual([
      5000, 10_000, 20_000, 40_000, 640_000, 900_000, 900_000,
    ]);
    expect(retryDelayMs(loadEnv({ SERVICE_NAME: "auth" }), 1)).toBe(5000);
  });

  test("a recipient the relay refuses (550) is given up at once, emptied, counted as failed", async () => {
    const failedBefore = (await metric(series("email_verify", "failed"))) ?? 0;
    const email = `refused-${uniqueEmail()}`;
    await registerUser(auth.url, email);
    const failed = await eventually(
      () => sql`select m.* from auth.mail_outbox m join auth.users u on u.id = m.user_id where u.email = ${email}`,
      (rows) => rows[0]?.failed_at != null,
    );
    expect(failed[0]).toMatchObject({ to_address: "", payload: {}, sent_at: null, attempts: 1 });
    expect(String(failed[0]?.last_error)).toContain("550");
    expect(String(failed[0]?.last_error)).not.toContain(email);
    expect(await metric(series("email_verify", "failed"))).toBe(failedBefore + 1);
  });

  test("two replicas share the outbox: 300 mails, each sent exactly once", async () => {
    const second = await startAuthWithSmtp(ctx, { relay: auth.smtp });
    expect(second.url).not.toBe(auth.url);
    const batch = Array.from({ length: 300 }, (_, i) => `batch-${i}-${uniqueEmail()}`);
    const db = auth.platform.db;
    await db.transaction(async (tx) => {
      for (const to of batch) {
        await enqueueMail(tx, { userId: null, to, template: "account_deleted", locale: "en", payload: {} });
      }
    });
    await eventually(
      () => auth.smtp.mails.filter((mail) => batch.includes(mail.to[0] ?? "")).length,
      (n) => n >= 300,
      20_000,
    );
    // Long enough for a double send to show up.
    await Bun.sleep(300);
    const received = auth.smtp.mails.filter((mail) => batch.includes(mail.to[0] ?? ""));
    expect(received).toHaveLength(300);
    expect(new Set(received.map((mail) => mail.parsed.messageId)).size).toBe(300);
  }, 30_000);

  test("the other account mails (account_deleted, export_ready) go through the same outbox, in the user's language", async () => {
    const gone = uniqueEmail();
    const exporter = uniqueEmail();
    await auth.platform.db.transaction(async (tx) => {
      await enqueueMail(tx, {
        userId: crypto.randomUUID(),
        to: gone,
        template: "account_deleted",
        locale: "it",
        payload: {},
      });
      await enqueueMail(tx, {
        userId: crypto.randomUUID(),
        to: exporter,
        template: "export_ready",
        locale: "en",
        payload: { export_id: "0b1c", url: "https://api.example.com/api/v1/auth/exports/0b1c/download" },
      });
    });
    expect((await auth.smtp.waitFor(mailTo(gone))).subject).toBe("Il tuo account Adiuva è stato eliminato");
    const ready = await auth.smtp.waitFor(mailTo(exporter));
    expect(ready.text).toContain("https://api.example.com/api/v1/auth/exports/0b1c/download");
  });

  test("SMTP_URL credentials are used (the relay demands AUTH)", async () => {
    // Every mail in this file went through a relay that refuses unauthenticated senders.
    expect(auth.smtp.url).toStartWith("smtp://adiuva:p%40ss%2Fword@");
    expect(auth.smtp.mails.length).toBeGreaterThan(0);
  });
});

describe("giving up", () => {
  test("a mail still unsent after MAIL_GIVE_UP_AFTER_S is marked failed and emptied", async () => {
    const own = await createTestContext();
    try {
      // Nothing listens on port 9 of the loopback: every attempt is refused.
      const server = await startAuth(own, {
        env: { ...FAST_MAIL, SMTP_URL: "smtp://127.0.0.1:9", MAIL_GIVE_UP_AFTER_S: "1", TRUSTED_PROXY_HOPS: "1" },
      });
      const email = uniqueEmail();
      const response = await post(
        server.url,
        "/register",
        { email, password: PASSWORD },
        { "x-forwarded-for": randomIp() },
      );
      expect(response.status).toBe(201);
      const db = postgres(own.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const rows = await eventually(
          () => db`select * from auth.mail_outbox`,
          (found) => found[0]?.failed_at != null,
          10_000,
        );
        expect(rows[0]).toMatchObject({ to_address: "", payload: {}, sent_at: null });
        expect(rows[0]?.attempts).toBeGreaterThanOrEqual(2);
        const failed = await metricValue(server.metricsUrl, series("email_verify", "failed"));
        expect(failed).toBe(1);
        expect(await metricValue(server.metricsUrl, "auth_mail_outbox_pending")).toBe(0);
      } finally {
        await db.end();
      }
    } finally {
      await own.close();
    }
  }, 30_000);
});

describe("configuration", () => {
  const production = {
    SERVICE_NAME: "auth",
    NODE_ENV: "production",
    DATABASE_URL: "postgres://x@127.0.0.1/x",
    REDIS_URL: "redis://127.0.0.1:6379",
    JWT_PRIVATE_KEY_FILE: "/k",
    MASTER_KEY_FILE: "/m",
  };

  test("production without SMTP_URL or MAIL_FROM refuses to start, naming them", () => {
    expect(() => loadEnv(production)).toThrow(ConfigError);
    expect(() => loadEnv(production)).toThrow(/SMTP_URL, MAIL_FROM must be set when NODE_ENV=production/);
    expect(() =>
      loadEnv({
        ...production,
        SMTP_URL: "smtps://u:p@mail.example.com:465",
        MAIL_FROM: "Adiuva <no-reply@example.com>",
      }),
    ).not.toThrow();
  });

  test("a malformed SMTP_URL or MAIL_FROM is a configuration error naming it", () => {
    expect(() => loadEnv({ SERVICE_NAME: "auth", SMTP_URL: "http://mail.example.com" })).toThrow(/SMTP_URL/);
    expect(() => loadEnv({ SERVICE_NAME: "auth", MAIL_FROM: "not an address" })).toThrow(/MAIL_FROM/);
    expect(() => loadEnv({ SERVICE_NAME: "auth", PASSWORD_RESET_TTL_S: "5" })).toThrow(/PASSWORD_RESET_TTL_S/);
    expect(() => loadEnv({ SERVICE_NAME: "auth", EMAIL_VERIFY_TTL_S: "0" })).toThrow(/EMAIL_VERIFY_TTL_S/);
  });

  test("with MAIL_FROM unset (outside production) mails come from no-reply@localhost", async () => {
    expect(auth.smtp.mails.every((mail) => mail.from === "no-reply@localhost")).toBe(true);
  });
});
