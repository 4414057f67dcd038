// Confirming the address at sign-up and changing it, end to end through a real SMTP server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { localeFrom } from "../../src/auth/client-hints";
import { issueEmailToken } from "../../src/auth/email-tokens";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { tokenFromMail } from "../../src/shared/testing/smtp";
import { errorCode, get, PASSWORD, post, randomIp, registerUser, type SessionBody, uniqueEmail } from "./helpers";
import { mailTo, startAuthWithSmtp } from "./mail-helpers";

let ctx: TestContext;
let auth: Awaited<ReturnType<typeof startAuthWithSmtp>>;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());
  auth = await startAuthWithSmtp(ctx, { env: { TRUSTED_PROXY_HOPS: "1", AUTH_MAIL_ADDRESS_PER_HOUR: "3" } });
});
afterAll(() => ctx.close());

const from = () => ({ "x-forwarded-for": randomIp() });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const verify = (token: string) => post(auth.url, "/email/verify", { token }, from());
const resend = (token?: string) => post(auth.url, "/email/verify/resend", undefined, token ? bearer(token) : {});
const me = async (token: string) => (await (await get(auth.url, "/me", token)).json()) as Record<string, unknown>;
const putMe = (token: string, body: unknown) =>
  fetch(`${auth.url}/api/v1/auth/me`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...bearer(token), ...from() },
    body: JSON.stringify(body),
  });

async function register(headers: Record<string, string> = {}): Promise<SessionBody> {
  const response = await post(
    auth.url,
    "/register",
    { email: uniqueEmail(), password: PASSWORD },
    { ...from(), ...headers },
  );
  expect(response.status).toBe(201);
  return (await response.json()) as SessionBody;
}

describe("sign-up confirmation", () => {
  test("register mails a link; following it marks the address verified in /me; the link works once", async () => {
    const session = await registerUser(auth.url);
    expect(session.user).toMatchObject({ email_verified: false, locale: "en" });
    const mail = await auth.smtp.waitFor(mailTo(session.user.email, /confirm/i));
    expect(mail.subject).toBe("Confirm your e-mail address for Adiuva");
    expect(mail.text).toContain("http://localhost:8000/account/verify?token=");
    const token = tokenFromMail(mail);

    const response = await verify(token);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ purpose: "email_verify", email: session.user.email });
    expect((await me(session.access_token)).email_verified).toBe(true);

    const again = await verify(token);
    expect([again.status, await errorCode(again)]).toEqual([400, "invalid_token"]);
  });

  test("Accept-Language: it → the account's mails are in Italian", async () => {
    const session = await register({ "accept-language": "fr-FR, it;q=0.8, en;q=0.5" });
    expect(session.user).toMatchObject({ locale: "it" });
    const mail = await auth.smtp.waitFor(mailTo(session.user.email));
    expect(mail.subject).toBe("Conferma il tuo indirizzo e-mail per Adiuva");
    expect(mail.text).toContain("Conferma il mio indirizzo");
    expect(mail.html).toContain('<html lang="it">');
    expect(mail.parsed.headers.get("content-type")).toMatchObject({ value: "multipart/alternative" });
  });

  test("Accept-Language picks the first supported language by q order", () => {
    expect(localeFrom(undefined)).toBe("en");
    expect(localeFrom("it-IT")).toBe("it");
    expect(localeFrom("en;q=0.1, it")).toBe("it");
    expect(localeFrom("de, fr;q=0.9")).toBe("en");
    expect(localeFrom("*, it;q=0.2")).toBe("it");
    expect(localeFrom("it;q=0, en")).toBe("en");
    expect(localeFrom("garbage;;;q=abc,,,")).toBe("en");
  });

  test("PUT /me sets the mails' language; an unknown one is 422", async () => {
    const session = await registerUser(auth.url);
    const response = await putMe(session.access_token, { locale: "it" });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { locale: string }).locale).toBe("it");
    expect((await putMe(session.access_token, { locale: "fr" })).status).toBe(422);
    expect((await resend(session.access_token)).status).toBe(202);
    const mail = await auth.smtp.waitFor((m) => mailTo(session.user.email)(m) && m.subject.startsWith("Conferma"));
    expect(mail.text).toContain("Il team di Adiuva");
  });

  test("a forged, expired or password-reset token is 400 invalid_token and verifies nothing", async () => {
    const session = await registerUser(auth.url);
    const token = tokenFromMail(await auth.smtp.waitFor(mailTo(session.user.email)));
    for (const bad of ["never-issued", `${token}x`]) {
      const response = await verify(bad);
      expect([response.status, await errorCode(response)]).toEqual([400, "invalid_token"]);
    }
    await sql`update auth.email_tokens set expires_at = now() - interval '1 second' where user_id = ${session.user.id}`;
    expect((await verify(token)).status).toBe(400);
    expect((await me(session.access_token)).email_verified).toBe(false);
    // A reset token is not a confirmation token.
    expect((await post(auth.url, "/password/forgot", { email: session.user.email }, from())).status).toBe(202);
    const reset = tokenFromMail(await auth.smtp.waitFor(mailTo(session.user.email, /reset/i)));
    expect((await verify(reset)).status).toBe(400);
    expect((await me(session.access_token)).email_verified).toBe(false);
  });
});

describe("resend", () => {
  test("signed in: a new link (the old one still works until it expires); 409 once verified", async () => {
    const session = await registerUser(auth.url);
    await auth.smtp.waitFor(mailTo(session.user.email));
    const response = await resend(session.access_token);
    expect([response.status, await response.json()]).toEqual([202, { status: "accepted" }]);
    await auth.smtp.waitFor(() => auth.smtp.mails.filter(mailTo(session.user.email)).length >= 2);
    const token = tokenFromMail(auth.smtp.mails.filter(mailTo(session.user.email))[1] as { text: string });
    expect((await verify(token)).status).toBe(200);
    const done = await resend(session.access_token);
    expect([done.status, await errorCode(done)]).toEqual([409, "already_verified"]);
  });

  test("without a token 401; with another user's token it concerns that user only", async () => {
    expect((await resend()).status).toBe(401);
    const a = await registerUser(auth.url);
    const b = await registerUser(auth.url);
    await auth.smtp.waitFor(mailTo(b.user.email));
    expect((await resend(a.access_token)).status).toBe(202);
    await auth.smtp.waitFor(() => auth.smtp.mails.filter(mailTo(a.user.email)).length >= 2);
    expect(auth.smtp.mails.filter(mailTo(b.user.email))).toHaveLength(1);
  });

  test("rate-limited per account: 429 with Retry-After", async () => {
    const session = await registerUser(auth.url);
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await resend(session.access_token);
      statuses.push(last.status);
    }
    expect(statuses).toEqual([202, 202, 202, 429]);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("change of address", () => {
  test("takes effect when the new address confirms; the old one gets a notice", async () => {
    const session = await registerUser(auth.url);
    const next = uniqueEmail();
    const response = await putMe(session.access_token, { email: next.toUpperCase(), current_password: PASSWORD });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { email: string }).email).toBe(session.user.email);

    const confirm = await auth.smtp.waitFor(mailTo(next));
    expect(confirm.subject).toBe("Confirm the new e-mail address of your Adiuva account");
    const notice = await auth.smtp.waitFor(mailTo(session.user.email, /changing/));
    expect(notice.text).toContain(`${next.slice(0, 1)}•••@example.com`);
    expect(notice.text).not.toContain(next);

    const verified = await verify(tokenFromMail(confirm));
    expect(await verified.json()).toEqual({ purpose: "email_change", email: next });
    expect(await me(session.access_token)).toMatchObject({ email: next, email_verified: true });
    expect((await post(auth.url, "/login", { email: next, password: PASSWORD }, from())).status).toBe(200);
    expect((await post(auth.url, "/login", { email: session.user.email, password: PASSWORD }, from())).status).toBe(
      401,
    );
  });

  test("a wrong password is 403, a missing one 422, a taken address 409; nothing is mailed", async () => {
    const session = await registerUser(auth.url);
    const other = await registerUser(auth.url);
    const next = uniqueEmail();
    const wrong = await putMe(session.access_token, { email: next, current_password: "not the password" });
    expect([wrong.status, await errorCode(wrong)]).toEqual([403, "invalid_credentials"]);
    expect((await putMe(session.access_token, { email: next })).status).toBe(422);
    const taken = await putMe(session.access_token, { email: other.user.email, current_password: PASSWORD });
    expect([taken.status, await errorCode(taken)]).toEqual([409, "email_taken"]);
    await Bun.sleep(200);
    expect(auth.smtp.mails.some((mail) => mail.to.includes(next))).toBe(false);
    expect(auth.smtp.mails.filter(mailTo(session.user.email, /changing/))).toHaveLength(0);
  });

  test("the address taken meanwhile: 409 email_taken, and the link stays unspent for when it is free again", async () => {
    const session = await registerUser(auth.url);
    const next = uniqueEmail();
    expect((await putMe(session.access_token, { email: next, current_password: PASSWORD })).status).toBe(200);
    const token = tokenFromMail(await auth.smtp.waitFor(mailTo(next)));
    const squatter = await registerUser(auth.url, next);
    const refused = await verify(token);
    expect([refused.status, await errorCode(refused)]).toEqual([409, "email_taken"]);
    expect((await me(session.access_token)).email).toBe(session.user.email);
    // The other account moves away: the same link now works.
    await sql`update auth.users set email = ${uniqueEmail()} where id = ${squatter.user.id}`;
    expect((await verify(token)).status).toBe(200);
    expect((await me(session.access_token)).email).toBe(next);
  });

  test("two accounts confirming the same new address at once: one gets it, the other 409, 200 rounds", async () => {
    for (let round = 0; round < 200; round++) {
      const a = await registerUser(auth.url);
      const b = await registerUser(auth.url);
      const next = uniqueEmail();
      const tokens = await Promise.all(
        [a, b].map((s) =>
          issueEmailToken(auth.platform.db, { userId: s.user.id, purpose: "email_change", email: next, ttlS: 600 }),
        ),
      );
      const statuses = (await Promise.all(tokens.map((token) => verify(token)))).map((r) => r.status).sort();
      expect(statuses).toEqual([200, 409]);
    }
  }, 120_000);

  test("a reset and confirmations of the same account at once never deadlock nor fail, 100 rounds", async () => {
    for (let round = 0; round < 100; round++) {
      const { user } = await registerUser(auth.url);
      const issue = (purpose: "password_reset" | "email_change", email: string) =>
        issueEmailToken(auth.platform.db, { userId: user.id, purpose, email, ttlS: 600 });
      const [reset, first, second] = await Promise.all([
        issue("password_reset", user.email),
        issue("email_change", uniqueEmail()),
        issue("email_change", uniqueEmail()),
      ]);
      const statuses = await Promise.all([
        post(auth.url, "/password/reset", { token: reset, password: "a brand new passphrase" }, from()),
        verify(first),
        verify(second),
      ]).then((responses) => responses.map((response) => response.status));
      // Whichever confirmation commits first spends the other tokens: the rest are 400, never 5xx.
      expect(statuses.every((status) => [200, 204, 400].includes(status))).toBe(true);
      expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    }
  }, 120_000);

  test("a change spends the account's reset links sent to the old address", async () => {
    const session = await registerUser(auth.url);
    expect((await post(auth.url, "/password/forgot", { email: session.user.email }, from())).status).toBe(202);
    const reset = tokenFromMail(await auth.smtp.waitFor(mailTo(session.user.email, /reset/i)));
    const next = uniqueEmail();
    expect((await putMe(session.access_token, { email: next, current_password: PASSWORD })).status).toBe(200);
    expect((await verify(tokenFromMail(await auth.smtp.waitFor(mailTo(next))))).status).toBe(200);
    const response = await post(
      auth.url,
      "/password/reset",
      { token: reset, password: "a brand new passphrase" },
      from(),
    );
    expect([response.status, await errorCode(response)]).toEqual([400, "invalid_token"]);
  });

  test("verify route floods get 429 with Retry-After", async () => {
    const limited = await startAuthWithSmtp(ctx, {
      relay: auth.smtp,
      env: { TRUSTED_PROXY_HOPS: "1", AUTH_IP_REQUESTS_PER_MIN: "2" },
    });
    const ip = { "x-forwarded-for": randomIp() };
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await post(limited.url, "/email/verify", { token: `guess-${i}` }, ip);
      statuses.push(last.status);
    }
    expect(statuses).toEqual([400, 400, 429]);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
