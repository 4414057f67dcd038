// Strategy: see harness.ts — the real billing service and Stripe SDK against the fake Stripe API,
// on real PostgreSQL and Redis. These are the pages' plain HTTP checks (headers, language, 404,
// rate limit, what the success page and its poll reveal); pages-browser.test.ts loads them in
// Chromium. The service trusts one proxy hop here, so each test speaks from its own address
// (X-Forwarded-For) and has a rate-limit bucket of its own.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createBillingService } from "../../src/billing";
import { billingConfig, checkoutSuccessUrl } from "../../src/billing/config";
import type { BillingContext } from "../../src/billing/context";
import { appLink, BILLING_PAGES_PREFIX } from "../../src/billing/pages";
import { checkoutOutcome, sessionHint } from "../../src/billing/pages/checkout-outcome";
import { loadEnv } from "../../src/shared/env";
import { PAGE_CSP } from "../../src/shared/pages/headers";
import { pickLanguage } from "../../src/shared/pages/i18n";
import { rateLimiterFor } from "../../src/shared/rate-limit";
import { captureLogger } from "../../src/shared/testing";
import { type BillingHarness, billingEnv, startBilling } from "./harness";
import { payCheckout, privateDetails } from "./pages-support";

let h: BillingHarness;
/** The same service trusting no proxy, as it runs without Traefik in front. */
let direct: string;
beforeAll(async () => {
  h = await startBilling({ env: { TRUSTED_PROXY_HOPS: "1" } });
  direct = (await h.ctx.start([createBillingService], { service: "billing", env: billingEnv(h.fake) })).url;
});
afterAll(() => h.ctx.close());

let addressCount = 0;
/** A client address of its own, so no test spends another's rate-limit budget. */
const newAddress = () => `198.51.100.${++addressCount}`;

interface PageOptions {
  language?: string;
  address?: string;
  headers?: Record<string, string>;
  base?: string;
}

async function page(path: string, options: PageOptions = {}) {
  const headers: Record<string, string> = { "x-forwarded-for": options.address ?? newAddress(), ...options.headers };
  if (options.language) headers["accept-language"] = options.language;
  const response = await fetch(`${options.base ?? h.server.url}${path}`, { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const headingOf = (text: string) => /<h1>([^<]*)<\/h1>/.exec(text)?.[1];
const langOf = (text: string) => /<html lang="([^"]+)">/.exec(text)?.[1];

describe("security headers", () => {
  const paths = ["/billing", "/billing/success", "/billing/cancel", "/billing/nowhere", "/billing/success/status"];

  test("every page, asset and poll carries the CSP, no-referrer and nosniff; pages are never stored", async () => {
    for (const path of [...paths, "/billing/assets/pages.css", "/billing/assets/pages.js"]) {
      const { headers } = await page(path);
      expect({
        path,
        csp: headers.get("content-security-policy"),
        referrer: headers.get("referrer-policy"),
        nosniff: headers.get("x-content-type-options"),
      }).toEqual({ path, csp: PAGE_CSP, referrer: "no-referrer", nosniff: "nosniff" });
      if (!path.includes("/assets/"))
        expect({ path, cache: headers.get("cache-control") }).toEqual({ path, cache: "no-store" });
    }
    expect(PAGE_CSP).not.toContain("unsafe-inline");
    expect(PAGE_CSP).toContain("script-src 'self'");
  });

  test("the stylesheet and script are served as what they are, from the pages' own origin", async () => {
    const css = await page("/billing/assets/pages.css");
    const js = await page("/billing/assets/pages.js");
    expect([css.status, css.headers.get("content-type")]).toEqual([200, "text/css; charset=utf-8"]);
    expect([js.status, js.headers.get("content-type")]).toEqual([200, "text/javascript; charset=utf-8"]);
    const html = (await page("/billing/cancel")).text;
    expect([...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)].map((match) => match[1])).toEqual([
      "data:,",
      "/billing/assets/pages.css",
      "/billing/assets/pages.js",
    ]);
    expect(html).not.toMatch(/<script>|<style|style="|\son[a-z]+="/);
  });

  test("HSTS only when the request came over TLS: X-Forwarded-Proto https from a trusted proxy", async () => {
    const overTls = await page("/billing/cancel", { headers: { "x-forwarded-proto": "https" } });
    expect(overTls.headers.get("strict-transport-security")).toBe("max-age=31536000");
    const plain = await page("/billing/cancel", { headers: { "x-forwarded-proto": "http" } });
    expect(plain.headers.get("strict-transport-security")).toBeNull();
    // Trusting no proxy, the header is the client's own word: ignored.
    const claimed = await page("/billing/cancel", { base: direct, headers: { "x-forwarded-proto": "https" } });
    expect(claimed.status).toBe(200);
    expect(claimed.headers.get("strict-transport-security")).toBeNull();
  });

  test("the pages take no token: a request without one is served, not 401", async () => {
    for (const path of paths.slice(0, 3))
      expect({ path, status: (await page(path)).status }).toEqual({ path, status: 200 });
  });
});

describe("language", () => {
  test("Accept-Language picks Italian or English by weight; anything else, or nothing, is English", () => {
    expect(pickLanguage(null)).toBe("en");
    expect(pickLanguage("")).toBe("en");
    expect(pickLanguage("it-IT,it;q=0.9,en;q=0.8")).toBe("it");
    expect(pickLanguage("en-GB,it;q=0.9")).toBe("en");
    expect(pickLanguage("fr-FR, de;q=0.9, it;q=0.5")).toBe("it");
    expect(pickLanguage("en;q=0.4, IT;q=0.6")).toBe("it");
    expect(pickLanguage("it;q=0, en;q=0.1")).toBe("en");
    expect(pickLanguage("de, fr")).toBe("en");
    expect(pickLanguage("it;q=abc")).toBe("en");
    expect(pickLanguage("*")).toBe("en");
  });

  test("each page is written in the chosen language, with it in the lang attribute and Vary", async () => {
    const expected: Record<string, [string, string]> = {
      "/billing/cancel": ["Checkout cancelled", "Pagamento annullato"],
      "/billing": ["Back from billing", "Ritorno dalla fatturazione"],
      "/billing/success": ["Back from checkout", "Ritorno dal pagamento"],
      "/billing/nowhere": ["Page not found", "Pagina non trovata"],
    };
    for (const [path, [english, italian]] of Object.entries(expected)) {
      const en = await page(path, { language: "en-US,en;q=0.9" });
      const it = await page(path, { language: "it-IT,it;q=0.9,en;q=0.8" });
      const none = await page(path);
      expect({ path, en: [langOf(en.text), headingOf(en.text)], it: [langOf(it.text), headingOf(it.text)] }).toEqual({
        path,
        en: ["en", english],
        it: ["it", italian],
      });
      expect(headingOf(none.text)).toBe(english);
      expect(en.headers.get("vary")).toBe("Accept-Language");
    }
  });
});

describe("the deep link", () => {
  test("each page offers the app's deep link for its outcome, as a button", async () => {
    const links = {
      "/billing/success": "adiuva://billing/success",
      "/billing/cancel": "adiuva://billing/cancel",
      "/billing": "adiuva://billing/portal",
    };
    for (const [path, href] of Object.entries(links)) {
      expect({
        path,
        links: [...(await page(path)).text.matchAll(/<a class="button" href="([^"]+)"/g)].map((match) => match[1]),
      }).toEqual({
        path,
        links: [href],
      });
    }
  });

  test("APP_DEEP_LINK is the base every page appends its path to; a link that is no scheme:// is refused", () => {
    expect(appLink("adiuva://", "billing/cancel")).toBe("adiuva://billing/cancel");
    expect(appLink("https://app.adiuva.test/open", "billing/success")).toBe(
      "https://app.adiuva.test/open/billing/success",
    );
    const env = (value?: string) => loadEnv({ SERVICE_NAME: "billing", APP_DEEP_LINK: value });
    expect(env().APP_DEEP_LINK).toBe("adiuva://");
    expect(env("adiuva-dev://").APP_DEEP_LINK).toBe("adiuva-dev://");
    expect(() => env("javascript:alert(1)")).toThrow(/APP_DEEP_LINK/);
    expect(() => env('adiuva://"><script>')).toThrow(/APP_DEEP_LINK/);
  });
});

describe("the 404 page", () => {
  test("any other path under /billing answers 404 with a page in the same style and language", async () => {
    for (const path of ["/billing/nowhere", "/billing/success/extra/deep", "/billing/assets/other.css"]) {
      const response = await page(path, { language: "it" });
      expect({ path, status: response.status, type: response.headers.get("content-type") }).toEqual({
        path,
        status: 404,
        type: "text/html; charset=utf-8",
      });
      expect(headingOf(response.text)).toBe("Pagina non trovata");
      expect(response.text).toContain('<link rel="stylesheet" href="/billing/assets/pages.css">');
      expect(response.headers.get("content-security-policy")).toBe(PAGE_CSP);
    }
  });

  test("paths beside the prefix are not pages: /billingx is the API's 404", async () => {
    const response = await page("/billingx");
    expect(response.status).toBe(404);
    expect(JSON.parse(response.text).error.code).toBe("not_found");
  });
});

describe("rate limit per client address", () => {
  test("past 60 pages a minute an address gets the 429 page with Retry-After; another address does not", async () => {
    const address = newAddress();
    const statuses: number[] = [];
    for (let index = 0; index < 60; index++) statuses.push((await page("/billing/cancel", { address })).status);
    expect(new Set(statuses)).toEqual(new Set([200]));
    const refused = await page("/billing/cancel", { address, language: "it" });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("ratelimit-policy")).toBe('"billing-pages";q=60;w=60');
    expect(refused.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(refused.headers.get("content-security-policy")).toBe(PAGE_CSP);
    expect(headingOf(refused.text)).toBe("Troppe richieste");
    // The poll shares the budget and refuses in the API's error shape; the 404 page is limited too.
    const poll = await page("/billing/success/status?session_id=cs_test_x", { address });
    expect([poll.status, JSON.parse(poll.text).error.code]).toEqual([429, "rate_limited"]);
    expect((await page("/billing/nowhere", { address })).status).toBe(429);
    expect((await page("/billing/cancel")).status).toBe(200);
  });
});

describe("the success page", () => {
  test("after the webhook: the plan's name, and nothing about who paid or how much", async () => {
    const paid = await payCheckout(h, "pro");
    await paid.deliverWebhook();
    expect(paid.successPath).toBe(`${BILLING_PAGES_PREFIX}/success?session_id=${paid.sessionId}`);
    for (const [language, heading, status] of [
      ["en", "Payment complete", "Your plan is now Pro."],
      ["it", "Pagamento completato", "Il tuo piano ora è Pro."],
    ] as const) {
      const response = await page(paid.successPath, { language });
      expect([response.status, headingOf(response.text)]).toEqual([200, heading]);
      expect(response.text).toContain(`<p class="status" role="status">${status}</p>`);
      expect(response.text).toContain('href="adiuva://billing/success" data-open-app="now"');
      expect(privateDetails(paid).filter((detail) => response.text.includes(detail))).toEqual([]);
    }
  });

  test("before the webhook: pending, with a poll of that session only, which answers the plan once applied", async () => {
    const paid = await payCheckout(h, "team");
    const pending = await page(paid.successPath);
    expect(headingOf(pending.text)).toBe("Payment complete");
    const pollPath = `/billing/success/status?session_id=${paid.sessionId}`;
    expect(pending.text).toContain(`data-poll-url="${pollPath}"`);
    expect(pending.text).toContain('data-open-app="when-done"');
    const before = await page(pollPath);
    expect([before.status, JSON.parse(before.text)]).toEqual([200, { state: "pending" }]);
    await paid.deliverWebhook();
    const after = await page(pollPath);
    expect(JSON.parse(after.text)).toEqual({ state: "active", plan: "Team" });
    expect(after.headers.get("cache-control")).toBe("no-store");
    expect(privateDetails(paid).filter((detail) => after.text.includes(detail))).toEqual([]);
  });

  const neutral = async (path: string) => {
    const response = await page(path);
    expect({ path, status: response.status, heading: headingOf(response.text) }).toEqual({
      path,
      status: 200,
      heading: "Back from checkout",
    });
    expect(response.text).not.toMatch(/data-poll-url|data-open-app|Pro|Power|Team/);
    return response.text;
  };

  test("a forged, malformed or missing session id shows the neutral page; a malformed one never reaches Stripe", async () => {
    const before = h.fake.requests.length;
    await neutral("/billing/success");
    await neutral("/billing/success?session_id=");
    await neutral(`/billing/success?session_id=${encodeURIComponent('cs_"><script>alert(1)</script>')}`);
    await neutral("/billing/success?session_id=../../v1/customers");
    expect(h.fake.requests.length).toBe(before);
    await neutral("/billing/success?session_id=cs_test_forged0000000000000000");
    expect(h.fake.requests.length).toBe(before + 1);
    const poll = await page("/billing/success/status?session_id=cs_test_forged0000000000000000");
    expect(JSON.parse(poll.text)).toEqual({ state: "unknown" });
  });

  test("another user's session shows nothing private: unpaid is neutral, paid shows the plan name only", async () => {
    const owner = await payCheckout(h, "power");
    await owner.deliverWebhook();
    // Someone else's browser (no cookie, no token: the page cannot tell) holding the URL sees the
    // plan name of that session, never its payer, customer or amount.
    const seen = await page(owner.successPath);
    expect(seen.text).toContain("Your plan is now Power.");
    expect(privateDetails(owner).filter((detail) => seen.text.includes(detail))).toEqual([]);

    // A session still open (not paid) says nothing, not even that it exists.
    const token = await h.ctx.token(`user-${crypto.randomUUID()}`);
    const open = await h.call("POST", "/checkout", { token, body: { tier: "pro" } });
    const openId = String(open.body.url).split("/").pop();
    await neutral(`/billing/success?session_id=${openId}`);
  });

  test("a paid session that names another user than its customer's, or a customer we did not create, is neutral", async () => {
    const relabelled = await payCheckout(h, "pro");
    await relabelled.deliverWebhook();
    const session = h.fake.sessions.get(relabelled.sessionId) as Record<string, unknown>;
    session.client_reference_id = `user-${crypto.randomUUID()}`;
    await neutral(relabelled.successPath);

    const foreign = await payCheckout(h, "pro");
    await foreign.deliverWebhook();
    const foreignSession = h.fake.sessions.get(foreign.sessionId) as Record<string, unknown>;
    foreignSession.customer = "cus_not_ours";
    await neutral(foreign.successPath);
  });

  test("Stripe unavailable: the neutral page, not an error", async () => {
    const paid = await payCheckout(h, "pro");
    await paid.deliverWebhook();
    h.fake.unavailable = true;
    try {
      await neutral(paid.successPath);
    } finally {
      h.fake.unavailable = false;
    }
  });

  test("the session id is logged by its first characters only", async () => {
    const capture = captureLogger();
    const ctx: BillingContext = {
      platform: h.platform,
      db: h.platform.db,
      logger: capture.logger,
      config: billingConfig(h.platform.env),
      limiter: rateLimiterFor(h.platform),
      notifyOutbox: () => {},
    };
    const forged = `cs_test_${crypto.randomUUID().replaceAll("-", "")}`;
    expect(await checkoutOutcome(ctx, forged)).toEqual({ state: "unknown" });
    h.fake.unavailable = true;
    try {
      expect(await checkoutOutcome(ctx, forged)).toEqual({ state: "unknown" });
    } finally {
      h.fake.unavailable = false;
    }
    const logged = JSON.stringify(capture.lines);
    expect(capture.lines.length).toBe(2);
    expect(logged).toContain(sessionHint(forged));
    expect(logged).not.toContain(forged);
  });
});

describe("the success URL Checkout is created with", () => {
  test("the deployment's success page gets Stripe's session id placeholder; other URLs stay as given", () => {
    const config = (successUrl?: string) =>
      billingConfig(
        loadEnv({ SERVICE_NAME: "billing", PUBLIC_URL: "https://app.adiuva.test", BILLING_SUCCESS_URL: successUrl }),
      );
    const placeholder = "session_id={CHECKOUT_SESSION_ID}";
    const ours = config();
    expect(checkoutSuccessUrl(ours, ours.successUrl)).toBe(`https://app.adiuva.test/billing/success?${placeholder}`);
    const withQuery = config("https://app.adiuva.test/billing/success?from=app");
    expect(checkoutSuccessUrl(withQuery, withQuery.successUrl)).toBe(
      `https://app.adiuva.test/billing/success?from=app&${placeholder}`,
    );
    expect(checkoutSuccessUrl(ours, "adiuva://billing/done")).toBe("adiuva://billing/done");
    const already = `https://app.adiuva.test/billing/success?${placeholder}`;
    expect(checkoutSuccessUrl(ours, already)).toBe(already);
  });
});

describe("cancel and portal return", () => {
  test("say what happened and open the app at once", async () => {
    const cancel = await page("/billing/cancel", { language: "it" });
    expect(cancel.text).toContain("Non è stato effettuato alcun pagamento.");
    expect(cancel.text).toContain('href="adiuva://billing/cancel" data-open-app="now"');
    const portal = await page("/billing");
    expect(portal.text).toContain("Changes you made in the billing portal reach the app within a few seconds.");
    expect(portal.text).toContain('href="adiuva://billing/portal" data-open-app="now"');
  });
});
