// Strategy: the account pages in a real browser. The auth service runs as in
// account-pages-support.ts (real PostgreSQL and Redis, mails sent to the test SMTP server); every token
// comes from a mail the service sent after a real register or "forgot password" through the API.
// Debian's headless Chromium, driven by playwright-core, fills and submits the forms with the
// keyboard in English and Italian, under the pages' own CSP, recording CSP violations, console
// errors and every URL the browser asks for; then the API is asked whether the new password signs in
// and the database whether the address is confirmed. axe-core runs on each outcome (light and
// dark), screenshots go to test-artifacts/pages/. Without a Chromium that launches, the tests are
// skipped and the reason printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { eventually } from "../../src/shared/testing";
import {
  axeViolations,
  axeViolationsOverCdp,
  focused,
  launchChromium,
  SCREENSHOTS,
  watchedPage,
} from "../shared/pages-browser";
import {
  type AccountHarness,
  emailVerified,
  loginStatus,
  mailedLink,
  newAccount,
  resetLinkFor,
  startAccountPages,
  tokenOf,
} from "./account-pages-support";
import { PASSWORD } from "./helpers";

const launched = await launchChromium();
const browser = typeof launched === "string" ? undefined : launched;
const skipReason = typeof launched === "string" ? launched : undefined;
if (skipReason) console.log(`skipped the account pages' browser tests: ${skipReason}`);

let h: AccountHarness;
beforeAll(async () => {
  if (!browser) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  h = await startAccountPages();
});
afterAll(async () => {
  await browser?.close();
  await h?.ctx.close();
});

type Language = "en" | "it";
const LOCALES: Record<Language, string> = { en: "en-US", it: "it-IT" };
let contexts = 0;

interface ContextOptions {
  bypassCSP?: boolean;
  colorScheme?: "light" | "dark";
  javaScriptEnabled?: boolean;
}

/** A fresh browser profile speaking `language` from an address of its own. */
async function newContext(language: Language, options: ContextOptions = {}) {
  contexts += 1;
  return (browser as Browser).newContext({
    locale: LOCALES[language],
    colorScheme: options.colorScheme ?? "light",
    bypassCSP: options.bypassCSP ?? false,
    javaScriptEnabled: options.javaScriptEnabled ?? true,
    extraHTTPHeaders: { "x-forwarded-for": `203.0.113.${contexts % 250}`, "x-forwarded-proto": "https" },
  });
}

const TEXTS = {
  en: {
    form: "Choose a new password",
    password: "New password",
    confirm: "Repeat the new password",
    done: ["Password changed", "Your password was changed. Sign in again in the app with the new password."],
    invalid: ["This link no longer works", "choose “Forgot password?” on the sign-in screen"],
    weak: "This password cannot be used: password is too common.",
    mismatch: "The two passwords are not the same.",
    verify: "Confirm your e-mail address",
    verifyButton: "Confirm my address",
    verified: ["Address confirmed", "Your e-mail address is confirmed."],
    verifyInvalid: ["This link no longer works", "the app can send you a new link"],
    notFound: "Page not found",
  },
  it: {
    form: "Scegli una nuova password",
    password: "Nuova password",
    confirm: "Ripeti la nuova password",
    done: ["Password cambiata", "La tua password è stata cambiata. Accedi di nuovo nell'app con la nuova password."],
    invalid: ["Questo link non è più valido", "scegli “Password dimenticata?” nella schermata di accesso"],
    weak: "Questa password non si può usare: è troppo comune.",
    mismatch: "Le due password non coincidono.",
    verify: "Conferma il tuo indirizzo e-mail",
    verifyButton: "Conferma l'indirizzo",
    verified: ["Indirizzo confermato", "Il tuo indirizzo e-mail è confermato."],
    verifyInvalid: ["Questo link non è più valido", "l'app può inviarti un nuovo link"],
    notFound: "Pagina non trovata",
  },
} as const;

interface Session {
  context: BrowserContext;
  page: Page;
  problems: string[];
  /** Every URL the browser asked for, with the Referer it sent. */
  requests: Array<{ url: string; method: string; referer?: string }>;
}

/** A strict page (the pages' own CSP) that records problems and requests. */
async function open(language: Language, options: ContextOptions = {}): Promise<Session> {
  const context = await newContext(language, options);
  const { page, problems } = await watchedPage(context);
  const requests: Session["requests"] = [];
  page.on("request", (request) =>
    requests.push({ url: request.url(), method: request.method(), referer: request.headers().referer }),
  );
  return { context, page, problems, requests };
}

/** Chromium reports a document answered with 4xx as a failed resource: that is the status, not a fault. */
const realProblems = (problems: string[], status: number) =>
  problems.filter((problem) => !(status >= 400 && problem.includes(`status of ${status}`)));

const heading = async (page: Page) => (await page.textContent("h1"))?.trim();

async function shoot(page: Page, name: string, language: Language) {
  await page.screenshot({ path: `${SCREENSHOTS}/account-${name}-${language}.png`, fullPage: true });
}

/** Tab from the top: the skip link, then the password, its repetition and the button, each with a 3px outline. */
async function typeNewPassword(page: Page, password: string, confirm = password) {
  await page.keyboard.press("Tab");
  expect((await focused(page)).className).toBe("skip-link");
  await page.keyboard.press("Tab");
  const field = await focused(page);
  expect([field.tag, field.name, field.outline, field.width]).toEqual(["INPUT", "password", "solid", "3px"]);
  await page.keyboard.type(password);
  await page.keyboard.press("Tab");
  expect((await focused(page)).name).toBe("confirm");
  await page.keyboard.type(confirm);
  await page.keyboard.press("Tab");
  const button = await focused(page);
  expect([button.tag, button.className, button.outline, button.width]).toEqual(["BUTTON", "button", "solid", "3px"]);
}

/** Presses the focused button (Enter) and waits for the page it leads to. */
async function submitWithEnter(page: Page) {
  const [response] = await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  return response?.status() ?? 0;
}

const describeBrowser = describe.skipIf(!browser);

describeBrowser(skipReason ? `account pages in Chromium (skipped: ${skipReason})` : "account pages in Chromium", () => {
  for (const language of ["en", "it"] as const) {
    const texts = TEXTS[language];

    test(`${language}: a reset link from the mail, filled with the keyboard: the new password signs in`, async () => {
      const account = await newAccount(h);
      const link = await resetLinkFor(h, account);
      const token = tokenOf(link);
      const session = await open(language);
      const { page } = session;
      try {
        const response = await page.goto(`${h.url}${link}`);
        expect(response?.status()).toBe(200);
        expect(await page.getAttribute("html", "lang")).toBe(language);
        expect(await heading(page)).toBe(texts.form);
        // The fields are labelled: found by their label text, as assistive technology names them.
        expect(await page.getByLabel(texts.password, { exact: true }).getAttribute("type")).toBe("password");
        expect(await page.getByLabel(texts.confirm, { exact: true }).getAttribute("autocomplete")).toBe("new-password");
        expect(await page.locator("a.button.secondary").getAttribute("href")).toBe(`adiuva://reset?token=${token}`);
        expect(await axeViolationsOverCdp(page)).toEqual([]);
        await shoot(page, "reset-form", language);
        await typeNewPassword(page, "a brand new horse battery");
        expect(await submitWithEnter(page)).toBe(200);
        expect(new URL(page.url()).pathname).toBe("/account/reset/done");
        expect(await heading(page)).toBe(texts.done[0]);
        expect(await page.textContent("[role=status]")).toBe(texts.done[1]);
        expect(await page.locator("a.button").getAttribute("href")).toBe("adiuva://account/password-changed");
        await shoot(page, "reset-done", language);
        expect(realProblems(session.problems, 200)).toEqual([]);
        // The token left the browser once in a URL (the mail's) and once in a form body; never in a
        // Referer, the stylesheet's and script's requests included.
        const carrying = session.requests.filter((request) => request.url.includes(token));
        expect(carrying.map((request) => [request.method, new URL(request.url).pathname])).toEqual([
          ["GET", "/account/reset"],
        ]);
        expect(session.requests.length).toBeGreaterThanOrEqual(6);
        expect(session.requests.filter((request) => request.referer)).toEqual([]);
      } finally {
        await session.context.close();
      }
      expect(await loginStatus(h, account.email, "a brand new horse battery")).toBe(200);
      expect(await loginStatus(h, account.email, PASSWORD)).toBe(401);
    }, 60_000);

    test(`${language}: the same link used again: the invalid page, from a tab opened before and from the mail`, async () => {
      const account = await newAccount(h);
      const link = await resetLinkFor(h, account);
      const first = await open(language);
      const second = await open(language);
      try {
        await first.page.goto(`${h.url}${link}`);
        await second.page.goto(`${h.url}${link}`);
        await first.page.fill("#password", "first new password!");
        await first.page.fill("#confirm", "first new password!");
        await Promise.all([first.page.waitForNavigation(), first.page.click("button[type=submit]")]);
        expect(await heading(first.page)).toBe(texts.done[0]);
        // The second tab still shows the form: its submission finds the token spent.
        await second.page.fill("#password", "second new password!");
        await second.page.fill("#confirm", "second new password!");
        const [response] = await Promise.all([
          second.page.waitForNavigation(),
          second.page.click("button[type=submit]"),
        ]);
        expect(response?.status()).toBe(400);
        expect(await heading(second.page)).toBe(texts.invalid[0]);
        expect(await second.page.textContent("[role=alert]")).toContain(texts.invalid[1]);
        expect(await second.page.locator("a.button").getAttribute("href")).toBe("adiuva://account/forgot-password");
        expect(await axeViolationsOverCdp(second.page)).toEqual([]);
        await shoot(second.page, "reset-invalid", language);
        expect(realProblems(second.problems, 400)).toEqual([]);
        // The mail's link opened again says so before any password is typed.
        const again = await second.page.goto(`${h.url}${link}`);
        expect([again?.status(), await heading(second.page), await second.page.locator("form").count()]).toEqual([
          400,
          texts.invalid[0],
          0,
        ]);
      } finally {
        await first.context.close();
        await second.context.close();
      }
      expect(await loginStatus(h, account.email, "first new password!")).toBe(200);
      expect(await loginStatus(h, account.email, "second new password!")).toBe(401);
    }, 60_000);

    test(`${language}: a weak password shows the API's reason on the form again, focused, and the link still works`, async () => {
      const account = await newAccount(h);
      const link = await resetLinkFor(h, account);
      const session = await open(language);
      const { page } = session;
      try {
        await page.goto(`${h.url}${link}`);
        await typeNewPassword(page, "password123");
        expect(await submitWithEnter(page)).toBe(422);
        expect(await heading(page)).toBe(texts.form);
        expect(await page.textContent("[role=alert]")).toBe(texts.weak);
        const field = await focused(page);
        expect([field.name, await page.getAttribute("#password", "aria-invalid")]).toEqual(["password", "true"]);
        expect(await page.getAttribute("#password", "aria-describedby")).toBe("reset-error password-hint");
        expect(await axeViolationsOverCdp(page)).toEqual([]);
        await shoot(page, "reset-weak", language);
        // Two different passwords: the form again, and still nothing spent.
        await page.fill("#password", "a good long password");
        await page.fill("#confirm", "a good long passw0rd");
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        expect(await page.textContent("[role=alert]")).toContain(texts.mismatch);
        await page.fill("#password", "a good long password");
        await page.fill("#confirm", "a good long password");
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        expect(await heading(page)).toBe(texts.done[0]);
        expect(realProblems(session.problems, 422)).toEqual([]);
      } finally {
        await session.context.close();
      }
      expect(await loginStatus(h, account.email, "a good long password")).toBe(200);
    }, 60_000);

    test(`${language}: the confirmation link asks for a press; the press confirms the address`, async () => {
      const account = await newAccount(h);
      const link = await mailedLink(h, account.email, "verify");
      const session = await open(language);
      const { page } = session;
      try {
        const response = await page.goto(`${h.url}${link}`);
        expect(response?.status()).toBe(200);
        expect(await heading(page)).toBe(texts.verify);
        await page.reload();
        expect(await emailVerified(h, account.id)).toBe(false);
        expect(await axeViolationsOverCdp(page)).toEqual([]);
        await shoot(page, "verify", language);
        await page.keyboard.press("Tab");
        await page.keyboard.press("Tab");
        const button = await focused(page);
        expect([button.tag, button.outline, button.width]).toEqual(["BUTTON", "solid", "3px"]);
        expect((await page.textContent("button"))?.trim()).toBe(texts.verifyButton);
        expect(await submitWithEnter(page)).toBe(200);
        expect(await heading(page)).toBe(texts.verified[0]);
        expect(await page.textContent("[role=status]")).toContain(texts.verified[1]);
        expect(await page.locator("a.button").getAttribute("href")).toBe("adiuva://account/email-verified");
        await shoot(page, "verify-done", language);
        expect(realProblems(session.problems, 200)).toEqual([]);
        // Back to the mail: the link is used now.
        expect((await page.goto(`${h.url}${link}`))?.status()).toBe(400);
        expect(await heading(page)).toBe(texts.verifyInvalid[0]);
        expect(await page.textContent("[role=alert]")).toContain(texts.verifyInvalid[1]);
        await shoot(page, "verify-invalid", language);
      } finally {
        await session.context.close();
      }
      expect(await emailVerified(h, account.id)).toBe(true);
    }, 60_000);

    test(`${language}: without JavaScript the reset and the confirmation work the same`, async () => {
      const account = await newAccount(h);
      const verify = await mailedLink(h, account.email, "verify");
      const reset = await resetLinkFor(h, account);
      const session = await open(language, { javaScriptEnabled: false });
      const { page } = session;
      try {
        await page.goto(`${h.url}${reset}`);
        await page.fill("#password", "no script needed here");
        await page.fill("#confirm", "no script needed here");
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        expect(await heading(page)).toBe(texts.done[0]);
        await page.goto(`${h.url}${verify}`);
        // The reset followed a link to the same mailbox, which already confirmed the address;
        // the confirmation link itself still works once.
        await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        expect(await heading(page)).toBe(texts.verified[0]);
      } finally {
        await session.context.close();
      }
      expect(await loginStatus(h, account.email, "no script needed here")).toBe(200);
    }, 60_000);

    test(`${language}: the 404 page and the broken-link page`, async () => {
      const session = await open(language);
      const { page } = session;
      try {
        expect((await page.goto(`${h.url}/account/nowhere`))?.status()).toBe(404);
        expect(await heading(page)).toBe(texts.notFound);
        await shoot(page, "not-found", language);
        expect(realProblems(session.problems, 404)).toEqual([]);
        expect((await page.goto(`${h.url}/account/reset?token=cut`))?.status()).toBe(400);
        expect(await page.locator("form").count()).toBe(0);
        await shoot(page, "broken-link", language);
        expect(realProblems(session.problems, 400).filter((problem) => !problem.includes("status of 404"))).toEqual([]);
      } finally {
        await session.context.close();
      }
    }, 60_000);
  }

  test("dark colour scheme: no serious or critical axe violation on any account page", async () => {
    const account = await newAccount(h);
    const reset = await resetLinkFor(h, account);
    const verify = await mailedLink(h, account.email, "verify");
    const paths = [
      reset,
      verify,
      "/account",
      "/account/reset/done",
      "/account/verify/done",
      "/account/reset?token=forgedforgedforgedforged",
      "/account/nowhere",
    ];
    for (const colorScheme of ["dark", "light"] as const) {
      for (const path of paths) {
        const context = await newContext("en", { bypassCSP: true, colorScheme });
        try {
          const page = await context.newPage();
          await page.goto(`${h.url}${path}`);
          expect({ colorScheme, path, violations: await axeViolations(page) }).toEqual({
            colorScheme,
            path,
            violations: [],
          });
          if (colorScheme === "dark" && path === reset) await shoot(page, "reset-form-dark", "en");
        } finally {
          await context.close();
        }
      }
    }
    // Opening pages never spends: both links still work.
    expect(await emailVerified(h, account.id)).toBe(false);
  }, 60_000);

  test("the watch on a page is not blind: an inline script is blocked and reported", async () => {
    const session = await open("en");
    try {
      await session.page.goto(`${h.url}/account`);
      await session.page.evaluate(() => {
        const inline = document.createElement("script");
        inline.textContent = "document.title = 'injected'";
        document.body.append(inline);
      });
      const seen = await eventually(
        () => [...session.problems],
        (list) => list.some((problem) => problem.startsWith("csp: script-src-elem")),
      );
      expect(seen).toContainEqual(expect.stringMatching(/^csp: script-src-elem blocked inline/));
      expect(await session.page.title()).not.toBe("injected");
    } finally {
      await session.context.close();
    }
  }, 60_000);
});
