// Strategy: the billing pages in a real browser. The billing service runs as in harness.ts (real
// PostgreSQL, Redis and Stripe SDK, the fake Stripe API); Debian's headless Chromium, driven by
// playwright-core, loads each page in English and Italian. A strict context (the page's own CSP)
// checks the text, the deep link, that the pending page polls until the webhook is delivered, that
// no CSP violation or console error happens; it saves a screenshot into test-artifacts/pages/.
// A second context, allowed to bypass the CSP only so that axe-core's source can be injected,
// checks keyboard focus and runs axe, failing on any serious or critical violation. Without a
// Chromium that launches, the tests are skipped and the reason printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { eventually } from "../../src/shared/testing";
import { axeViolations, axeViolationsOverCdp, launchChromium, SCREENSHOTS, watchedPage } from "../shared/pages-browser";
import { type BillingHarness, startBilling } from "./harness";
import { type PaidCheckout, payCheckout, privateDetails } from "./pages-support";

const launched = await launchChromium();
const browser = typeof launched === "string" ? undefined : launched;
const skipReason = typeof launched === "string" ? launched : undefined;
if (skipReason) console.log(`skipped the billing pages' browser tests: ${skipReason}`);

let h: BillingHarness;
beforeAll(async () => {
  if (!browser) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  // One proxy hop trusted: each browser context speaks from its own address, with its own budget.
  h = await startBilling({ env: { TRUSTED_PROXY_HOPS: "1" } });
});
afterAll(async () => {
  await browser?.close();
  await h?.ctx.close();
});

type Language = "en" | "it";
const LOCALES: Record<Language, string> = { en: "en-US", it: "it-IT" };
let contexts = 0;

/** A fresh browser profile (no cookies, no storage) speaking `language` from an address of its own. */
async function newContext(language: Language, options: { bypassCSP?: boolean; colorScheme?: "light" | "dark" } = {}) {
  contexts += 1;
  return (browser as Browser).newContext({
    locale: LOCALES[language],
    colorScheme: options.colorScheme ?? "light",
    bypassCSP: options.bypassCSP ?? false,
    extraHTTPHeaders: { "x-forwarded-for": `203.0.113.${contexts % 250}`, "x-forwarded-proto": "https" },
  });
}

/**
 * The page's markup and style, without its script: keyboard focus (Tab order and the visible
 * outline), then axe-core, whose source goes in through this CSP-bypassing context. The script is
 * replaced by an empty one here: opening the app hands the deep link to the system, and Chromium can
 * drop key presses while it does, which would make the keyboard check depend on timing.
 */
async function inspectMarkup(path: string, language: Language, colorScheme: "light" | "dark" = "light") {
  const context = await newContext(language, { bypassCSP: true, colorScheme });
  try {
    const page = await context.newPage();
    await page.route("**/billing/assets/pages.js", (route) =>
      route.fulfill({ status: 200, contentType: "text/javascript", body: "" }),
    );
    const response = await page.goto(`${h.server.url}${path}`);
    await expectVisibleFocus(page, (response?.status() ?? 0) < 400);
    return await axeViolations(page);
  } finally {
    await context.close();
  }
}

interface Expected {
  status: number;
  heading: string;
  /** Text the page shows in its main content (the outcome). */
  text: string;
  /** The deep link's href, or null for a page without one (404). */
  appLink: string | null;
  /** Whether the page opens the app by itself. */
  opensApp: boolean;
}

/**
 * Loads `path` in a strict context: checks what `expected` says, and that nothing was blocked or
 * failed; saves a screenshot named `name`.
 * `whileOpen` runs with the page loaded (the pending page waits there for the webhook).
 */
async function visit(
  name: string,
  language: Language,
  path: string,
  expected: Expected,
  whileOpen?: (page: Page) => Promise<void>,
) {
  const context = await newContext(language);
  try {
    const { page, problems } = await watchedPage(context);
    await arriveFromStripe(page);
    const response = await page.goto(`${h.server.url}${path}`);
    expect(response?.status()).toBe(expected.status);
    await whileOpen?.(page);
    expect(await page.getAttribute("html", "lang")).toBe(language);
    expect((await page.textContent("h1"))?.trim()).toBe(expected.heading);
    expect(await page.textContent("main")).toContain(expected.text);
    const button = page.locator("a.button");
    if (expected.appLink === null) expect(await button.count()).toBe(0);
    else {
      expect(await button.getAttribute("href")).toBe(expected.appLink);
      if (expected.opensApp) await page.waitForSelector("a.button[data-opened='true']", { timeout: 5000 });
      else expect(await button.getAttribute("data-opened")).toBeNull();
    }
    // The stylesheet applied: the frame is laid out by it, not by the browser's defaults.
    expect(await page.evaluate(() => getComputedStyle(document.body).display)).toBe("flex");
    await page.screenshot({ path: `${SCREENSHOTS}/${name}-${language}.png`, fullPage: true });
    // Allowed: the 404 page's own status, which Chromium reports as a failed resource.
    const allowed = expected.status === 404 ? /404 \(Not Found\)/ : /^$/;
    expect(problems.filter((problem) => !allowed.test(problem))).toEqual([]);
    return page;
  } finally {
    await context.close();
  }
}

/**
 * The payer clicks at Stripe before Stripe sends them to us. Chromium lets a page open an external
 * app without a gesture of its own only after such a user action (one launch per action, for the
 * whole browser), so without it every page after the first would be refused the launch.
 */
async function arriveFromStripe(page: Page) {
  await page.setContent("<button>Pay</button>");
  await page.click("button");
}

/** Tab reaches the skip link first (then the button), and each shows a visible outline or moves into view. */
async function expectVisibleFocus(page: Page, hasButton: boolean) {
  await page.keyboard.press("Tab");
  const skip = await page.evaluate(() => {
    const element = document.activeElement as HTMLElement;
    return { className: element.className, top: element.getBoundingClientRect().top, tag: element.tagName };
  });
  expect([skip.tag, skip.className]).toEqual(["A", "skip-link"]);
  expect(skip.top).toBeGreaterThanOrEqual(0);
  if (!hasButton) return;
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => {
    const element = document.activeElement as HTMLElement;
    const style = getComputedStyle(element);
    return { className: element.className, outline: style.outlineStyle, width: style.outlineWidth };
  });
  expect(focused).toEqual({ className: "button", outline: "solid", width: "3px" });
}

const TEXTS = {
  en: {
    paid: "Payment complete",
    neutral: ["Back from checkout", "Open the app to see your subscription."],
    plan: (plan: string) => `Your plan is now ${plan}.`,
    pending: "We are activating your plan",
    cancel: ["Checkout cancelled", "No payment was made."],
    portal: ["Back from billing", "Changes you made in the billing portal reach the app"],
    notFound: ["Page not found", "There is no page at this address."],
  },
  it: {
    paid: "Pagamento completato",
    neutral: ["Ritorno dal pagamento", "Apri l'app per vedere il tuo abbonamento."],
    plan: (plan: string) => `Il tuo piano ora è ${plan}.`,
    pending: "Stiamo attivando il tuo piano",
    cancel: ["Pagamento annullato", "Non è stato effettuato alcun pagamento."],
    portal: ["Ritorno dalla fatturazione", "Le modifiche fatte nel portale di fatturazione arrivano nell'app"],
    notFound: ["Pagina non trovata", "A questo indirizzo non c'è nessuna pagina."],
  },
} as const;

/** The page text never holds who paid, their customer, or the amount. */
async function expectNothingPrivate(path: string, paid: PaidCheckout, language: Language) {
  const context = await newContext(language);
  try {
    const page = await context.newPage();
    await page.goto(`${h.server.url}${path}`);
    const html = await page.content();
    expect(privateDetails(paid).filter((detail) => html.includes(detail))).toEqual([]);
  } finally {
    await context.close();
  }
}

describe(skipReason ? `billing pages in Chromium (skipped: ${skipReason})` : "billing pages in Chromium", () => {
  for (const language of ["en", "it"] as const) {
    const texts = TEXTS[language];
    /** The success page once the plan is known: it opens the app by itself. */
    const success = (plan: string): Expected => ({
      status: 200,
      heading: texts.paid,
      text: texts.plan(plan),
      appLink: "adiuva://billing/success",
      opensApp: true,
    });

    test.skipIf(!browser)(
      `${language}: success after the webhook shows the plan and opens the app`,
      async () => {
        const paid = await payCheckout(h, "pro");
        await paid.deliverWebhook();
        await visit("success-active", language, paid.successPath, success("Pro"));
        await expectNothingPrivate(paid.successPath, paid, language);
        expect(await inspectMarkup(paid.successPath, language)).toEqual([]);
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: success before the webhook shows pending, then the plan once it is delivered`,
      async () => {
        const paid = await payCheckout(h, "team");
        await visit("success-pending", language, paid.successPath, success("Team"), async (page) => {
          expect(await page.textContent("[role=status]")).toContain(texts.pending);
          await page.screenshot({ path: `${SCREENSHOTS}/success-pending-before-${language}.png`, fullPage: true });
          expect(await axeViolationsOverCdp(page)).toEqual([]);
          await paid.deliverWebhook();
          await page.waitForSelector("[data-poll-done='active']", { timeout: 15_000 });
        });
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: cancel says no payment was made and opens the app`,
      async () => {
        const [heading, text] = texts.cancel;
        await visit("cancel", language, "/billing/cancel", {
          status: 200,
          heading,
          text,
          appLink: "adiuva://billing/cancel",
          opensApp: true,
        });
        expect(await inspectMarkup("/billing/cancel", language)).toEqual([]);
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: the portal's return page opens the app`,
      async () => {
        const [heading, text] = texts.portal;
        await visit("portal-return", language, "/billing", {
          status: 200,
          heading,
          text,
          appLink: "adiuva://billing/portal",
          opensApp: true,
        });
        expect(await inspectMarkup("/billing", language)).toEqual([]);
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: a forged session id shows the neutral page, with nothing private`,
      async () => {
        const [heading, text] = texts.neutral;
        const path = "/billing/success?session_id=cs_test_forged0000000000000000";
        await visit("success-forged", language, path, {
          status: 200,
          heading,
          text,
          appLink: "adiuva://billing/success",
          opensApp: false,
        });
        expect(await inspectMarkup(path, language)).toEqual([]);
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: another user's unpaid session shows the neutral page`,
      async () => {
        const [heading, text] = texts.neutral;
        const token = await h.ctx.token(`user-${crypto.randomUUID()}`);
        const open = await h.call("POST", "/checkout", { token, body: { tier: "power" } });
        const path = `/billing/success?session_id=${String(open.body.url).split("/").pop()}`;
        await visit("success-other-user", language, path, {
          status: 200,
          heading,
          text,
          appLink: "adiuva://billing/success",
          opensApp: false,
        });
      },
      60_000,
    );

    test.skipIf(!browser)(
      `${language}: any other path under /billing is the 404 page`,
      async () => {
        const [heading, text] = texts.notFound;
        await visit("not-found", language, "/billing/nowhere", {
          status: 404,
          heading,
          text,
          appLink: null,
          opensApp: false,
        });
        expect(await inspectMarkup("/billing/nowhere", language)).toEqual([]);
      },
      60_000,
    );
  }

  test.skipIf(!browser)(
    "the watch on a page is not blind: an inline script is blocked and reported",
    async () => {
      const context = await newContext("en");
      try {
        const { page, problems } = await watchedPage(context);
        await page.goto(`${h.server.url}/billing/cancel`);
        await page.evaluate(() => {
          const inline = document.createElement("script");
          inline.textContent = "document.title = 'injected'";
          document.body.append(inline);
        });
        const seen = await eventually(
          () => [...problems],
          (list) => list.some((problem) => problem.startsWith("csp: script-src-elem")),
        );
        expect(seen).toContainEqual(expect.stringMatching(/^csp: script-src-elem blocked inline/));
        expect(await page.title()).not.toBe("injected");
      } finally {
        await context.close();
      }
    },
    60_000,
  );

  test.skipIf(!browser)(
    "dark colour scheme: no serious or critical axe violation on any page",
    async () => {
      const paid = await payCheckout(h, "power");
      await paid.deliverWebhook();
      for (const path of [paid.successPath, "/billing/cancel", "/billing", "/billing/nowhere"]) {
        expect({ path, violations: await inspectMarkup(path, "en", "dark") }).toEqual({ path, violations: [] });
      }
    },
    60_000,
  );
});
