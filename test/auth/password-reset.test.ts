// Password reset end to end through a real SMTP server: the link in the received mail is the only
// way to the token, as for a user.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { issueEmailToken, linkWithToken } from "../../src/auth/email-tokens";
import type { Platform } from "../../src/shared/platform";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { tokenFromMail } from "../../src/shared/testing/smtp";
import { connectDevice, startChat } from "../chat/gateway/helpers";
import { errorCode, get, PASSWORD, post, randomIp, registerUser, type SessionBody, uniqueEmail } from "./helpers";
import { mailTo, startAuthWithSmtp } from "./mail-helpers";

const NEW_PASSWORD = "a brand new passphrase";

let ctx: TestContext;
let auth: Awaited<ReturnType<typeof startAuthWithSmtp>>;
let platform: Platform;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());
  // Roomy mail limits here; the limits have their own server below.
  auth = await startAuthWithSmtp(ctx, {
    env: {
      TRUSTED_PROXY_HOPS: "1",
      AUTH_MAIL_IP_PER_HOUR: "100000",
      AUTH_MAIL_ADDRESS_PER_HOUR: "100000",
      AUTH_IP_REQUESTS_PER_MIN: "100000",
      AUTH_LOCKOUT_THRESHOLD: "3",
    },
  });
  platform = auth.platform;
});
afterAll(() => ctx.close());

const from = (ip = randomIp()) => ({ "x-forwarded-for": ip });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const forgot = (email: string, ip?: string) => post(auth.url, "/password/forgot", { email }, from(ip));
const reset = (token: string, password = NEW_PASSWORD, ip?: string) =>
  post(auth.url, "/password/reset", { token, password }, from(ip));
const login = (email: string, password: string, ip?: string) => post(auth.url, "/login", { email, password }, from(ip));
const resetMails = (email: string) => auth.smtp.mails.filter(mailTo(email, /reset/i)).length;

/** Asks for a link and returns its token, read from the mail that arrives. */
async function mailedResetToken(email: string): Promise<string> {
  const before = resetMails(email);
  expect((await forgot(email)).status).toBe(202);
  const mail = await auth.smtp.waitFor((each) => mailTo(email, /reset/i)(each) && resetMails(email) > before);
  return tokenFromMail(mail);
}

async function rows(query: string, ...params: string[]): Promise<Record<string, unknown>[]> {
  return [...(await sql.unsafe(query, params))];
}

describe("forgot → mail → reset", () => {
  test("the mailed link sets the password, ends every session and device socket, and mails a notice", async () => {
    const chat = await startChat(ctx);
    const session = await registerUser(auth.url);
    const email = session.user.email;
    const other = (await (await login(email, PASSWORD)).json()) as SessionBody;
    const device = await connectDevice(ctx, {
      url: chat.wsUrl,
      userId: session.user.id,
      token: () => other.access_token,
    });
    const closed = new Promise<{ code: number }>((resolve) => device.on("close", resolve));

    const token = await mailedResetToken(email);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const mail = auth.smtp.mails.findLast(mailTo(email, /reset/i));
    expect(mail?.text).toContain(`http://localhost:8000/account/reset?token=${token}`);
    expect(mail?.html).toContain(`href="http://localhost:8000/account/reset?token=${token}"`);
    expect(mail?.html).not.toMatch(/<img|src=|url\(/i);

    expect((await reset(token)).status).toBe(204);
    expect((await login(email, PASSWORD)).status).toBe(401);
    expect((await login(email, NEW_PASSWORD)).status).toBe(200);
    // Every session ended: access tokens refused, refresh tokens spent, the device socket closed.
    expect((await get(auth.url, "/me", session.access_token)).status).toBe(401);
    expect((await get(auth.url, "/me", other.access_token)).status).toBe(401);
    expect((await post(auth.url, "/refresh", { refresh_token: session.refresh_token })).status).toBe(401);
    expect((await closed).code).toBe(4403);
    const notice = await auth.smtp.waitFor(mailTo(email, /password was changed/i));
    expect(notice.text).toContain("every device was signed out");
  });

  test("a used token, an older token of the same account and a forged one are 400 invalid_token", async () => {
    const { user } = await registerUser(auth.url);
    const older = await mailedResetToken(user.email);
    const newer = await mailedResetToken(user.email);
    expect((await reset(newer)).status).toBe(204);
    for (const token of [newer, older, "forged-token-that-was-never-issued", `${newer.slice(0, -1)}A`]) {
      const response = await reset(token, "yet another passphrase");
      expect({ status: response.status, code: await errorCode(response) }).toEqual({
        status: 400,
        code: "invalid_token",
      });
    }
    // Nothing changed by the refused attempts.
    expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
  });

  test("an expired token is refused and changes nothing; the TTL is PASSWORD_RESET_TTL_S", async () => {
    const { user } = await registerUser(auth.url);
    const token = await mailedResetToken(user.email);
    const [row] = await rows(
      "select extract(epoch from expires_at - created_at)::int as ttl from auth.email_tokens where user_id = $1 and purpose = 'password_reset'",
      user.id,
    );
    expect(row?.ttl).toBe(1800);
    await rows("update auth.email_tokens set expires_at = now() - interval '1 second' where user_id = $1", user.id);
    const response = await reset(token);
    expect([response.status, await errorCode(response)]).toEqual([400, "invalid_token"]);
    expect((await login(user.email, PASSWORD)).status).toBe(200);
  });

  test("a weak password is 422 and leaves the token usable", async () => {
    const { user } = await registerUser(auth.url);
    const token = await mailedResetToken(user.email);
    const weak = await reset(token, "short");
    expect(weak.status).toBe(422);
    expect((await reset(token, user.email)).status).toBe(422);
    expect((await reset(token)).status).toBe(204);
  });

  test("malformed bodies are 4xx with a code, never 5xx", async () => {
    for (const body of [{}, { token: "" }, { token: "x", password: "" }, { token: "x".repeat(201), password: "p" }]) {
      const response = await post(auth.url, "/password/reset", body, from());
      expect(response.status).toBe(422);
      expect(await errorCode(response)).toBeString();
    }
    expect((await post(auth.url, "/password/forgot", { email: "not an address" }, from())).status).toBe(422);
    expect((await post(auth.url, "/password/forgot", { email: "a@b.co", extra: 1 }, from())).status).toBe(422);
  });

  test("a reset lifts the account's sign-in lockout", async () => {
    const { user } = await registerUser(auth.url);
    const ip = randomIp();
    for (let i = 0; i < 3; i++) expect((await login(user.email, "wrong password!", ip)).status).toBe(401);
    expect((await login(user.email, PASSWORD, ip)).status).toBe(429);
    const token = await mailedResetToken(user.email);
    expect((await reset(token, NEW_PASSWORD, ip)).status).toBe(204);
    expect((await login(user.email, NEW_PASSWORD, ip)).status).toBe(200);
  });

  test("concurrent resets with one token: exactly one succeeds, 200 rounds", async () => {
    const { user } = await registerUser(auth.url);
    let winners = 0;
    for (let round = 0; round < 200; round++) {
      const token = await issueEmailToken(platform.db, {
        userId: user.id,
        purpose: "password_reset",
        email: user.email,
        ttlS: 600,
      });
      const statuses = await Promise.all(
        [0, 1, 2].map((i) => reset(token, `round ${round} passphrase ${i}`).then((r) => r.status)),
      );
      expect(statuses.filter((status) => status === 204)).toHaveLength(1);
      expect(statuses.filter((status) => status === 400)).toHaveLength(2);
      winners += 1;
    }
    expect(winners).toBe(200);
    const [used] = await rows(
      "select count(*)::int as n from auth.email_tokens where user_id = $1 and purpose = 'password_reset' and used_at is null",
      user.id,
    );
    expect(used?.n).toBe(0);
  }, 120_000);
});

describe("password change through PUT /me", () => {
  test("mails the same notice, in the account's language", async () => {
    const session = await registerUser(auth.url);
    expect(
      (
        await fetch(`${auth.url}/api/v1/auth/me`, {
          method: "PUT",
          headers: { "content-type": "application/json", ...bearer(session.access_token), ...from() },
          body: JSON.stringify({ locale: "it", current_password: PASSWORD, new_password: NEW_PASSWORD }),
        })
      ).status,
    ).toBe(200);
    const notice = await auth.smtp.waitFor(mailTo(session.user.email, /password/i));
    expect(notice.subject).toBe("La password di Adiuva è stata cambiata");
  });
});

describe("no enumeration", () => {
  test("a known and an unknown address get the same status and body, and only the known one a mail", async () => {
    const { user } = await registerUser(auth.url);
    const unknown = uniqueEmail();
    const known = await forgot(user.email);
    const missing = await forgot(unknown);
    expect(missing.status).toBe(known.status);
    expect(await missing.text()).toBe(await known.text());
    expect(known.status).toBe(202);
    await auth.smtp.waitFor(mailTo(user.email, /reset/i));
    // The unknown address got neither a token nor a mail, now or later.
    await forgot(user.email);
    await auth.smtp.waitFor((mail) => mailTo(user.email, /reset/i)(mail) && resetMails(user.email) >= 2);
    const [tokens] = await rows("select count(*)::int as n from auth.email_tokens where email = $1", unknown);
    const [outbox] = await rows("select count(*)::int as n from auth.mail_outbox where to_address = $1", unknown);
    expect([tokens?.n, outbox?.n]).toEqual([0, 0]);
    expect(auth.smtp.mails.some((mail) => mail.to.includes(unknown))).toBe(false);
  });

  test("answer time: the medians of 50 known and 50 unknown addresses differ by under 3 ms", async () => {
    const { user } = await registerUser(auth.url);
    const timed = async (email: string) => {
      const started = performance.now();
      const response = await forgot(email);
      await response.arrayBuffer();
      expect(response.status).toBe(202);
      return performance.now() - started;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) await timed(uniqueEmail()); // warm-up
    // Interleaved, so load from elsewhere on the machine falls on both alike.
    for (let i = 0; i < 50; i++) {
      known.push(await timed(user.email));
      unknown.push(await timed(uniqueEmail()));
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    const difference = Math.abs(median(known) - median(unknown));
    console.log(
      `forgot: median known ${median(known).toFixed(2)} ms, unknown ${median(unknown).toFixed(2)} ms, difference ${difference.toFixed(2)} ms`,
    );
    expect(difference).toBeLessThan(3);
  }, 60_000);
});

describe("limits", () => {
  let limited: Awaited<ReturnType<typeof startAuthWithSmtp>>;
  beforeAll(async () => {
    limited = await startAuthWithSmtp(ctx, {
      relay: auth.smtp,
      env: {
        TRUSTED_PROXY_HOPS: "1",
        AUTH_MAIL_IP_PER_HOUR: "4",
        AUTH_MAIL_ADDRESS_PER_HOUR: "2",
        AUTH_IP_REQUESTS_PER_MIN: "3",
      },
    });
  });

  test("per address, known or not: the third request within the hour is 429 with Retry-After", async () => {
    const { user } = await registerUser(limited.url);
    for (const email of [user.email, uniqueEmail()]) {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 3; i++) {
        last = await post(limited.url, "/password/forgot", { email }, from());
        statuses.push(last.status);
      }
      expect(statuses).toEqual([202, 202, 429]);
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await errorCode(last as Response)).toBe("rate_limited");
    }
  });

  test("per client address across addresses", async () => {
    const ip = randomIp();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await post(limited.url, "/password/forgot", { email: uniqueEmail() }, from(ip))).status);
    }
    expect(statuses).toEqual([202, 202, 202, 202, 429]);
  });

  test("reset attempts per client address", async () => {
    const ip = randomIp();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await post(
        limited.url,
        "/password/reset",
        { token: `guess-${i}`, password: NEW_PASSWORD },
        from(ip),
      );
      statuses.push(response.status);
      if (response.status === 429) expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([400, 400, 400, 429]);
  });
});

describe("links", () => {
  test("PASSWORD_RESET_URL: the token is appended as a query parameter, also to an app link with a query", async () => {
    expect(linkWithToken("https://adiuva.app/account/reset", "t0k")).toBe("https://adiuva.app/account/reset?token=t0k");
    expect(linkWithToken("adiuva://reset", "t0k")).toBe("adiuva://reset?token=t0k");
    expect(linkWithToken("adiuva://reset?from=mail", "t0k")).toBe("adiuva://reset?from=mail&token=t0k");
    expect(linkWithToken("https://a.b/r?x=1#top", "t0k")).toBe("https://a.b/r?x=1&token=t0k#top");

    const app = await startAuthWithSmtp(ctx, {
      relay: auth.smtp,
      env: { TRUSTED_PROXY_HOPS: "1", PASSWORD_RESET_URL: "adiuva://reset?from=mail" },
    });
    const { user } = await registerUser(app.url);
    expect((await post(app.url, "/password/forgot", { email: user.email }, from())).status).toBe(202);
    const mail = await app.smtp.waitFor(mailTo(user.email, /reset/i));
    expect(mail.text).toMatch(/adiuva:\/\/reset\?from=mail&token=[A-Za-z0-9_-]{43}/);
    expect(
      (await post(app.url, "/password/reset", { token: tokenFromMail(mail), password: NEW_PASSWORD }, from())).status,
    ).toBe(204);
  });

  test("a signed-in caller gains nothing: the reset routes take no bearer and another user's token does not help", async () => {
    const victim = await registerUser(auth.url);
    const attacker = await registerUser(auth.url);
    const attackerToken = await mailedResetToken(attacker.user.email);
    // The attacker's token resets the attacker's account only, whoever is signed in.
    const response = await fetch(`${auth.url}/api/v1/auth/password/reset`, {
      method: "POST",
      headers: { "content-type": "application/json", ...from(), ...bearer(victim.access_token) },
      body: JSON.stringify({ token: attackerToken, password: NEW_PASSWORD }),
    });
    expect(response.status).toBe(204);
    expect((await login(victim.user.email, PASSWORD)).status).toBe(200);
    expect((await login(attacker.user.email, NEW_PASSWORD)).status).toBe(200);
  });
});
