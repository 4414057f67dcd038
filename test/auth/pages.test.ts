// Strategy: the real auth service on real PostgreSQL and Redis, its mails sent over SMTP to the
// test SMTP server (account-pages-support.ts). These are the account pages' plain HTTP checks: headers, language,
// the 404 page, the rate limit, the forms posted as a browser without script posts them, what a GET
// may not do (spend a token), where the token may appear, and that no log line holds it.
// pages-browser.test.ts runs the same flows in Chromium. The service trusts one proxy hop, so each
// request speaks from an address of its own (X-Forwarded-For) unless a test says otherwise.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createAuthService } from "../../src/auth";
import { hashToken } from "../../src/auth/crypto";
import { issueEmailToken, newEmailToken } from "../../src/auth/email-tokens";
import { ACCOUNT_PAGES_PER_MINUTE } from "../../src/auth/pages";
import { weakPasswordMessage } from "../../src/auth/pages/reset";
import { WEAK_PASSWORD_IT } from "../../src/auth/pages/texts";
import { passwordProblem } from "../../src/auth/passwords";
import { emailTokens, users } from "../../src/auth/tables";
import { PAGE_CSP } from "../../src/shared/pages/headers";
import { startServer } from "../../src/shared/server";
import { captureLogger, eventually } from "../../src/shared/testing";
import {
  type AccountHarness,
  emailVerified,
  loginStatus,
  mailedLink,
  newAccount,
  resetLinkFor,
  startAccountPages,
  storedToken,
  tokenOf,
} from "./account-pages-support";
import { PASSWORD } from "./helpers";

let h: AccountHarness;
beforeAll(async () => {
  h = await startAccountPages();
});
afterAll(() => h.ctx.close());

let addressCount = 0;
/** A client address of its own, so no test spends another's rate-limit budget. */
const newAddress = () => {
  addressCount += 1;
  return `198.18.${addressCount >> 8}.${addressCount & 255}`;
};

interface Request {
  language?: string;
  address?: string;
  /** A form body, posted as `application/x-www-form-urlencoded`. */
  form?: Record<string, string>;
  body?: string;
  contentType?: string;
  base?: string;
}

async function page(path: string, options: Request = {}) {
  const headers: Record<string, string> = { "x-forwarded-for": options.address ?? newAddress() };
  if (options.language) headers["accept-language"] = options.language;
  let body: string | undefined = options.body;
  if (options.form) body = new URLSearchParams(options.form).toString();
  if (body !== undefined) headers["content-type"] = options.contentType ?? "application/x-www-form-urlencoded";
  const response = await fetch(`${options.base ?? h.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body,
    redirect: "manual",
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const headingOf = (text: string) => /<h1>([^<]*)<\/h1>/.exec(text)?.[1];
const langOf = (text: string) => /<html lang="([^"]+)">/.exec(text)?.[1];
const NEW_PASSWORD = "a fresh horse battery";
/** A token of the right shape that no link ever carried. */
const FORGED = "forgedforgedforgedforgedforgedforgedforged0";

async function tokenRow(token: string) {
  const [row] = await h.platform.db
    .select()
    .from(emailTokens)
    .where(eq(emailTokens.tokenHash, hashToken(token)));
  return row;
}

describe("the mailed links open these pages", () => {
  test("a reset and a confirmation mail link to /account/reset and /account/verify with their token", async () => {
    const account = await newAccount(h);
    const verify = await mailedLink(h, account.email, "verify");
    expect(verify).toMatch(/^\/account\/verify\?token=[A-Za-z0-9_-]{43}$/);
    const reset = await resetLinkFor(h, account);
    expect(reset).toMatch(/^\/account\/reset\?token=[A-Za-z0-9_-]{43}$/);
    expect((await page(reset)).status).toBe(200);
    expect((await page(verify)).status).toBe(200);
  });
});

describe("security headers", () => {
  test("every page, form answer and asset carries the CSP, no-referrer and nosniff; pages are never stored", async () => {
    const account = await newAccount(h);
    const reset = await resetLinkFor(h, account);
    const verify = await mailedLink(h, account.email, "verify");
    const answers = [
      await page("/account"),
      await page(reset),
      await page(verify),
      await page("/account/reset"),
      await page("/account/reset/done"),
      await page("/account/verify/done"),
      await page("/account/nowhere"),
      await page("/account/reset", { form: { token: FORGED, password: NEW_PASSWORD, confirm: NEW_PASSWORD } }),
      await page("/account/verify", { form: { token: FORGED } }),
      await page("/account/verify", { body: "{}", contentType: "application/json" }),
    ];
    for (const [index, { headers }] of answers.entries()) {
      expect({
        index,
        csp: headers.get("content-security-policy"),
        referrer: headers.get("referrer-policy"),
        nosniff: headers.get("x-content-type-options"),
        frames: headers.get("x-frame-options"),
        cache: headers.get("cache-control"),
      }).toEqual({
        index,
        csp: PAGE_CSP,
        referrer: "no-referrer",
        nosniff: "nosniff",
        frames: "DENY",
        cache: "no-store",
      });
    }
    expect(PAGE_CSP).toContain("form-action 'self'");
    for (const asset of ["/account/assets/pages.css", "/account/assets/pages.js"]) {
      const { status, headers } = await page(asset);
      expect([asset, status, headers.get("content-security-policy"), headers.get("referrer-policy")]).toEqual([
        asset,
        200,
        PAGE_CSP,
        "no-referrer",
      ]);
    }
  });

  test("nothing is loaded from elsewhere: the pages' own stylesheet and script, no inline script or style", async () => {
    const account = await newAccount(h);
    const reset = await page(await resetLinkFor(h, account));
    expect(
      [...reset.text.matchAll(/<(?:script|link|img|iframe)[^>]+(?:src|href)="([^"]+)"/g)].map((m) => m[1]),
    ).toEqual(["data:,", "/account/assets/pages.css", "/account/assets/pages.js"]);
    expect(reset.text).not.toMatch(/<script>|<style|style="|\son[a-z]+="/);
  });

  test("the pages take no token: a request without one is served, not 401", async () => {
    for (const path of ["/account", "/account/reset/done", "/account/verify/done"]) {
      expect({ path, status: (await page(path)).status }).toEqual({ path, status: 200 });
    }
  });

  test("HSTS only when the request came over TLS through a trusted proxy", async () => {
    const response = await fetch(`${h.url}/account`, {
      headers: { "x-forwarded-for": newAddress(), "x-forwarded-proto": "https" },
    });
    await response.body?.cancel();
    expect(response.headers.get("strict-transport-security")).toBe("max-age=31536000");
    expect((await page("/account")).headers.get("strict-transport-security")).toBeNull();
  });
});

describe("the token stays where it came", () => {
  test("the reset form posts to a URL without it; it is in the body, and in the app's link only", async () => {
    const account = await newAccount(h);
    const link = await resetLinkFor(h, account);
    const token = tokenOf(link);
    const { text } = await page(link);
    expect(text).toContain('<form method="post" action="/account/reset">');
    expect(text).toContain(`<input type="hidden" name="token" value="${token}">`);
    expect(text).toContain(`href="adiuva://reset?token=${token}"`);
    expect(text.split(token).length - 1).toBe(2);
    // The outcome is reached by a redirect to a path without it.
    const done = await page("/account/reset", { form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
    expect([done.status, done.headers.get("location")]).toEqual([303, "/account/reset/done"]);
    expect(done.text).not.toContain(token);
  });

  test("the confirmation page posts without it in the URL and offers no link that carries it", async () => {
    const account = await newAccount(h);
    const link = await mailedLink(h, account.email, "verify");
    const token = tokenOf(link);
    const { text } = await page(link);
    expect(text).toContain('<form method="post" action="/account/verify">');
    expect(text.split(token).length - 1).toBe(1);
  });

  test("no log line holds a token: neither the access log (path without query) nor the service's", async () => {
    const capture = captureLogger();
    const platform = await h.ctx.platform({
      service: "auth",
      env: { TRUSTED_PROXY_HOPS: "1", PASSWORD_HASH_MEMORY_KIB: "4096", PASSWORD_HASH_TIME_COST: "1" },
    });
    const logged = { ...platform, logger: capture.logger };
    const server = await startServer({
      platform: logged,
      modules: [await createAuthService(logged)],
      port: 0,
      hostname: "127.0.0.1",
    });
    try {
      const account = await newAccount(h);
      const token = tokenOf(await resetLinkFor(h, account));
      const verify = tokenOf(await mailedLink(h, account.email, "verify"));
      const base = server.url;
      await page(`/account/reset?token=${token}`, { base });
      await page("/account/reset", { base, form: { token, password: "short", confirm: "short" } });
      await page("/account/reset", { base, form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
      await page("/account/reset", { base, form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
      await page(`/account/verify?token=${verify}`, { base });
      await page("/account/verify", { base, form: { token: verify } });
      // The access log line is written once the answer has gone out: wait for all six.
      const requests = await eventually(
        () => capture.lines.filter((line) => line.msg === "request"),
        (lines) => lines.length >= 6,
      );
      expect(requests.map((line) => line.path)).toContain("/account/reset");
      expect(requests.length).toBeGreaterThanOrEqual(6);
      const all = JSON.stringify(capture.lines);
      expect([all.includes(token), all.includes(verify), all.includes("token=")]).toEqual([false, false, false]);
    } finally {
      await server.stop();
    }
  });
});

describe("password reset", () => {
  test("the form resets the password: 303 to the done page; the new one signs in, the old one no longer", async () => {
    const account = await newAccount(h);
    const token = tokenOf(await resetLinkFor(h, account));
    const answer = await page("/account/reset", {
      form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD },
      language: "it",
    });
    expect([answer.status, answer.headers.get("location")]).toEqual([303, "/account/reset/done"]);
    expect(await loginStatus(h, account.email, NEW_PASSWORD)).toBe(200);
    expect(await loginStatus(h, account.email, PASSWORD)).toBe(401);
    const done = await page("/account/reset/done", { language: "it" });
    expect(headingOf(done.text)).toBe("Password cambiata");
    expect(done.text).toContain("Accedi di nuovo nell&#39;app con la nuova password.");
    expect(done.text).toContain('href="adiuva://account/password-changed"');
    expect((await tokenRow(token))?.usedAt).not.toBeNull();
  });

  test("a used token: the form answers 400 with the way forward (the app's Forgot password), password unchanged", async () => {
    const account = await newAccount(h);
    const link = await resetLinkFor(h, account);
    const token = tokenOf(link);
    const first = await page("/account/reset", { form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
    expect(first.status).toBe(303);
    const again = await page("/account/reset", {
      form: { token, password: "another good password", confirm: "another good password" },
    });
    expect([again.status, headingOf(again.text)]).toEqual([400, "This link no longer works"]);
    expect(again.text).toContain("open the app and choose “Forgot password?” on the sign-in screen");
    expect(again.text).toContain('href="adiuva://account/forgot-password"');
    expect(await loginStatus(h, account.email, NEW_PASSWORD)).toBe(200);
    // Opening the mail's link again says so at once, before any password is typed.
    const reopened = await page(link, { language: "it" });
    expect([reopened.status, headingOf(reopened.text)]).toEqual([400, "Questo link non è più valido"]);
    expect(reopened.text).not.toContain("<form");
  });

  test("an expired or forged token is the same invalid page, on GET and on POST", async () => {
    const account = await newAccount(h);
    const expired = await storedToken(h, account, "password_reset");
    await h.platform.db
      .update(emailTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(emailTokens.tokenHash, hashToken(expired)));
    for (const token of [expired, FORGED]) {
      const opened = await page(`/account/reset?token=${token}`);
      const posted = await page("/account/reset", { form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } });
      expect([token, opened.status, headingOf(opened.text), posted.status, headingOf(posted.text)]).toEqual([
        token,
        400,
        "This link no longer works",
        400,
        "This link no longer works",
      ]);
    }
    expect(await loginStatus(h, account.email, PASSWORD)).toBe(200);
  });

  test("a link without a token, or with a malformed one, is the broken-link page and asks nothing", async () => {
    for (const query of ["", "?token=", "?token=short", `?token=${"x".repeat(300)}`, "?token=%22%3E%3Cscript%3E"]) {
      const response = await page(`/account/reset${query}`);
      expect([query, response.status, headingOf(response.text)]).toEqual([query, 400, "This link is incomplete"]);
      expect(response.text).not.toMatch(/<form|<script>/);
    }
  });

  test("a weak password: 422, the form again with the API's reason, the token not spent", async () => {
    const account = await newAccount(h);
    const token = tokenOf(await resetLinkFor(h, account));
    for (const [language, password, reason] of [
      ["en", "password123", "This password cannot be used: password is too common."],
      ["it", "aaaaabbbbbaaaaa", "Questa password non si può usare: deve contenere più caratteri diversi."],
      ["en", account.email, "This password cannot be used: password must not be the e-mail address."],
    ] as const) {
      const answer = await page("/account/reset", { form: { token, password, confirm: password }, language });
      expect([answer.status, headingOf(answer.text)]).toEqual([
        422,
        language === "it" ? "Scegli una nuova password" : "Choose a new password",
      ]);
      expect(answer.text).toContain(`<p class="error" role="alert" id="reset-error">${reason}</p>`);
      expect(answer.text).toContain(`<input type="hidden" name="token" value="${token}">`);
      expect(answer.text).toContain('aria-invalid="true"');
      // The fields start empty: a refused password is never written back into the page.
      expect(answer.text).not.toContain(`value="${password}"`);
    }
    expect((await tokenRow(token))?.usedAt).toBeNull();
    expect(await loginStatus(h, account.email, PASSWORD)).toBe(200);
  });

  test("two different passwords: 422 and the form again, without asking the API", async () => {
    const account = await newAccount(h);
    const token = tokenOf(await resetLinkFor(h, account));
    const answer = await page("/account/reset", {
      form: { token, password: NEW_PASSWORD, confirm: `${NEW_PASSWORD}!` },
    });
    expect(answer.status).toBe(422);
    expect(answer.text).toContain("The two passwords are not the same.");
    expect((await tokenRow(token))?.usedAt).toBeNull();
  });

  test("one user's token changes that user's password only", async () => {
    const owner = await newAccount(h);
    const other = await newAccount(h);
    const token = tokenOf(await resetLinkFor(h, owner));
    expect(
      (await page("/account/reset", { form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } })).status,
    ).toBe(303);
    expect(await loginStatus(h, other.email, PASSWORD)).toBe(200);
    expect(await loginStatus(h, other.email, NEW_PASSWORD)).toBe(401);
    expect(await loginStatus(h, owner.email, NEW_PASSWORD)).toBe(200);
  });

  test("every reason the API gives for a weak password has its Italian words", () => {
    const email = "someone@example.com";
    const reasons = [
      passwordProblem("short", email),
      passwordProblem("x".repeat(257), email),
      passwordProblem("password123", email),
      passwordProblem("someone@example.com", email),
      passwordProblem("abababababab", email),
    ];
    expect(reasons.every((reason) => typeof reason === "string")).toBe(true);
    expect(reasons.filter((reason) => !(reason && reason in WEAK_PASSWORD_IT))).toEqual([]);
    expect(weakPasswordMessage("it", "some new rule")).toBe("Questa password non si può usare: some new rule.");
    // The field's minlength is the API's: 9 characters are refused, 10 are enough.
    expect(passwordProblem("abcdefghi", email)).toBeDefined();
    expect(passwordProblem("abcdefghij", email)).toBeUndefined();
  });
});

describe("address confirmation", () => {
  test("a GET never spends the token: a link scanner's fetches leave it live and the address unconfirmed", async () => {
    const account = await newAccount(h);
    const link = await mailedLink(h, account.email, "verify");
    for (let index = 0; index < 5; index++) expect((await page(link)).status).toBe(200);
    expect((await tokenRow(tokenOf(link)))?.usedAt).toBeNull();
    expect(await emailVerified(h, account.id)).toBe(false);
  });

  test("the button confirms: 303 to the done page, email_verified true; the link is then used", async () => {
    const account = await newAccount(h);
    const link = await mailedLink(h, account.email, "verify");
    const opened = await page(link, { language: "it" });
    expect(headingOf(opened.text)).toBe("Conferma il tuo indirizzo e-mail");
    const answer = await page("/account/verify", { form: { token: tokenOf(link) } });
    expect([answer.status, answer.headers.get("location")]).toEqual([303, "/account/verify/done"]);
    expect(await emailVerified(h, account.id)).toBe(true);
    const done = await page("/account/verify/done");
    expect([headingOf(done.text), done.text.includes('href="adiuva://account/email-verified"')]).toEqual([
      "Address confirmed",
      true,
    ]);
    const again = await page("/account/verify", { form: { token: tokenOf(link) } });
    expect([again.status, headingOf(again.text)]).toEqual([400, "This link no longer works"]);
    expect(again.text).toContain('href="adiuva://account/verify-email"');
    expect((await page(link)).status).toBe(400);
  });

  test("a change of address another account took meanwhile: 409 and the address stays", async () => {
    const mover = await newAccount(h);
    const taker = await newAccount(h);
    // The change's token, to the address that another account then takes.
    const wanted = `wanted-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const token = newEmailToken();
    await issueEmailToken(h.platform.db, {
      userId: mover.id,
      purpose: "email_change",
      email: wanted,
      ttlS: 600,
      token,
    });
    await h.platform.db.update(users).set({ email: wanted }).where(eq(users.id, taker.id));
    const answer = await page("/account/verify", { form: { token }, language: "it" });
    expect([answer.status, headingOf(answer.text)]).toEqual([409, "Indirizzo già in uso"]);
    const [row] = await h.platform.db.select({ email: users.email }).from(users).where(eq(users.id, mover.id));
    expect(row?.email).toBe(mover.email);
  });
});

describe("bad input", () => {
  test("anything but a form of reasonable size is the 400 page in the pages' style, never a 5xx", async () => {
    const cases: Array<[string, string]> = [
      ["{}", "application/json"],
      ["token=x", "text/plain"],
      ['--b\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--b--', "multipart/form-data; boundary=b"],
      [`token=${"a".repeat(9000)}`, "application/x-www-form-urlencoded"],
    ];
    for (const path of ["/account/reset", "/account/verify"]) {
      for (const [body, contentType] of cases) {
        const answer = await page(path, { body, contentType, language: "it" });
        expect([path, contentType, answer.status, headingOf(answer.text)]).toEqual([
          path,
          contentType,
          400,
          "Modulo non leggibile",
        ]);
        expect(answer.headers.get("content-type")).toBe("text/html; charset=utf-8");
      }
    }
  });

  test("forms with missing, repeated or junk fields are the broken-link page or the form again", async () => {
    const weird: Array<[string, string, number]> = [
      ["/account/reset", "", 400],
      ["/account/reset", "password=abc", 400],
      ["/account/reset", "token=%ff%fe&password=%00", 400],
      ["/account/verify", "token=", 400],
      ["/account/verify", `token=${FORGED}&token=${FORGED}`, 400],
      ["/account/reset", `token=${FORGED}&password=${"p".repeat(400)}&confirm=${"p".repeat(400)}`, 400],
    ];
    for (const [path, body, status] of weird) {
      const answer = await page(path, { body });
      expect([path, body.slice(0, 40), answer.status]).toEqual([path, body.slice(0, 40), status]);
    }
  });
});

describe("language", () => {
  test("each page is written in the chosen language, with it in the lang attribute and Vary", async () => {
    const expected: Record<string, [string, string]> = {
      "/account": ["Your Adiuva account", "Il tuo account Adiuva"],
      "/account/reset": ["This link is incomplete", "Questo link è incompleto"],
      [`/account/reset?token=${FORGED}`]: ["This link no longer works", "Questo link non è più valido"],
      "/account/reset/done": ["Password changed", "Password cambiata"],
      "/account/verify/done": ["Address confirmed", "Indirizzo confermato"],
      "/account/nowhere": ["Page not found", "Pagina non trovata"],
    };
    for (const [path, [english, italian]] of Object.entries(expected)) {
      const en = await page(path, { language: "en-GB,it;q=0.5" });
      const it = await page(path, { language: "it-IT,it;q=0.9,en;q=0.8" });
      expect({ path, en: [langOf(en.text), headingOf(en.text)], it: [langOf(it.text), headingOf(it.text)] }).toEqual({
        path,
        en: ["en", english],
        it: ["it", italian],
      });
      expect(en.headers.get("vary")).toBe("Accept-Language");
    }
  });
});

describe("the 404 page", () => {
  test("any other path under /account answers the 404 page; /accountx and a slashed page are the API's 404", async () => {
    for (const path of ["/account/nowhere", "/account/reset/extra/deep", "/account/assets/other.css"]) {
      const response = await page(path, { language: "it" });
      expect([path, response.status, headingOf(response.text)]).toEqual([path, 404, "Pagina non trovata"]);
      expect(response.headers.get("content-security-policy")).toBe(PAGE_CSP);
    }
    for (const path of ["/accountx", "/account/reset/"]) {
      const response = await page(path);
      expect([path, response.status, JSON.parse(response.text).error.code]).toEqual([path, 404, "not_found"]);
    }
  });
});

describe("rate limit per client address", () => {
  test(`past ${ACCOUNT_PAGES_PER_MINUTE} pages and posts a minute an address gets the 429 page; another address does not`, async () => {
    const address = newAddress();
    const statuses: number[] = [];
    for (let index = 0; index < ACCOUNT_PAGES_PER_MINUTE - 1; index++) {
      statuses.push((await page("/account", { address })).status);
    }
    statuses.push((await page("/account/verify", { address, form: { token: FORGED } })).status);
    expect(statuses.filter((status) => status !== 200)).toEqual([400]);
    const refused = await page("/account/reset/done", { address, language: "it" });
    expect([refused.status, headingOf(refused.text)]).toEqual([429, "Troppe richieste"]);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("ratelimit-policy")).toBe(`"account-pages";q=${ACCOUNT_PAGES_PER_MINUTE};w=60`);
    expect(refused.headers.get("content-security-policy")).toBe(PAGE_CSP);
    // A form past the limit is refused before the token is looked at; the 404 page is limited too.
    const account = await newAccount(h);
    const token = await storedToken(h, account, "email_verify");
    expect((await page("/account/verify", { address, form: { token } })).status).toBe(429);
    expect(await emailVerified(h, account.id)).toBe(false);
    expect((await page("/account/nowhere", { address })).status).toBe(429);
    expect((await page("/account")).status).toBe(200);
  });

  test("the API's own limit on token use shows as the 429 page, not an error", async () => {
    // The API counts token uses per address (AUTH_IP_REQUESTS_PER_MIN), the pages' posts included;
    // a service with a budget of 2 shows what its refusal looks like through a form.
    const tight = await startAccountPages({ AUTH_IP_REQUESTS_PER_MIN: "2" });
    try {
      const address = newAddress();
      const statuses: number[] = [];
      for (let index = 0; index < 3; index++) {
        statuses.push((await page("/account/verify", { base: tight.url, address, form: { token: FORGED } })).status);
      }
      expect(statuses).toEqual([400, 400, 429]);
    } finally {
      await tight.ctx.close();
    }
  });
});

describe("load", () => {
  test("the API busy hashing (503 auth_busy): the 503 page with Retry-After, and the link still works", async () => {
    // One hash at a time, none waiting, at the production cost: of resets posted at once, the
    // first takes the hasher and the others are refused before their token is spent.
    const busy = await startAccountPages({
      PASSWORD_HASH_CONCURRENCY: "1",
      PASSWORD_HASH_QUEUE: "0",
      PASSWORD_HASH_MEMORY_KIB: "19456",
      PASSWORD_HASH_TIME_COST: "2",
    });
    try {
      const tokens: string[] = [];
      for (let index = 0; index < 8; index++) {
        const account = await newAccount(busy);
        tokens.push(await storedToken(busy, account, "password_reset"));
      }
      const answers = await Promise.all(
        tokens.map((token) =>
          page("/account/reset", { base: busy.url, form: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } }),
        ),
      );
      const refused = answers.flatMap((answer, index) => (answer.status === 503 ? [index] : []));
      expect(answers.some((answer) => answer.status === 303)).toBe(true);
      expect(refused.length).toBeGreaterThan(0);
      for (const index of refused) {
        const answer = answers[index] as (typeof answers)[number];
        expect([headingOf(answer.text), answer.headers.get("retry-after")]).toEqual(["Temporarily unavailable", "1"]);
        const [row] = await busy.platform.db
          .select()
          .from(emailTokens)
          .where(eq(emailTokens.tokenHash, hashToken(tokens[index] as string)));
        expect(row?.usedAt).toBeNull();
      }
    } finally {
      await busy.ctx.close();
    }
  }, 60_000);
});

describe("races", () => {
  test("one reset link posted four times at once, 200 rounds: exactly one 303, the others the invalid page", async () => {
    const account = await newAccount(h);
    const outcomes = new Map<string, number>();
    for (let round = 0; round < 200; round++) {
      const token = await storedToken(h, account, "password_reset");
      const password = `round ${round} good password`;
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => page("/account/reset", { form: { token, password, confirm: password } })),
      );
      const key = answers
        .map((answer) => answer.status)
        .sort()
        .join(",");
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(outcomes)).toEqual({ "303,400,400,400": 200 });
    expect(await loginStatus(h, account.email, "round 199 good password")).toBe(200);
  }, 120_000);

  test("one confirmation link posted four times at once, 200 rounds: exactly one 303", async () => {
    const outcomes = new Map<string, number>();
    for (let round = 0; round < 200; round++) {
      const account = { ...(await newAccountFast()), password: PASSWORD };
      const token = await storedToken(h, account, "email_verify");
      const answers = await Promise.all(Array.from({ length: 4 }, () => page("/account/verify", { form: { token } })));
      const key = answers
        .map((answer) => answer.status)
        .sort()
        .join(",");
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(outcomes)).toEqual({ "303,400,400,400": 200 });
  }, 120_000);
});

/** A user row straight in the database (the race rounds need hundreds; register is tested above). */
async function newAccountFast() {
  const id = crypto.randomUUID();
  const email = `race-${id.slice(0, 8)}@example.com`;
  await h.platform.db.insert(users).values({ id, email, passwordHash: "x", encryptionKey: "x" });
  return { id, email };
}
