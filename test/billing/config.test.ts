// Configuration parsing, and one service started with no Stripe keys (no fake: nothing may call Stripe).
import { describe, expect, test } from "bun:test";
import { createBillingService } from "../../src/billing";
import { billingConfig, redirectUrl, tierForPrice } from "../../src/billing/config";
import { ConfigError, loadEnv } from "../../src/shared/env";
import { createTestContext } from "../../src/shared/testing";

const env = (extra: Record<string, string> = {}) =>
  loadEnv({ SERVICE_NAME: "billing", PUBLIC_URL: "https://app.adiuva.test", ...extra });

describe("billing configuration", () => {
  test("defaults the redirect URLs from PUBLIC_URL and allows only known origins", () => {
    const config = billingConfig(env({ BILLING_REDIRECT_ORIGINS: "adiuva://billing, https://www.adiuva.test" }));
    expect([config.successUrl, config.cancelUrl, config.portalReturnUrl]).toEqual([
      "https://app.adiuva.test/billing/success",
      "https://app.adiuva.test/billing/cancel",
      "https://app.adiuva.test/billing",
    ]);
    expect(redirectUrl(config, "x", "adiuva://billing/ok", "d")).toBe("adiuva://billing/ok");
    expect(redirectUrl(config, "x", "https://www.adiuva.test/thanks", "d")).toBe("https://www.adiuva.test/thanks");
    expect(redirectUrl(config, "x", undefined, "d")).toBe("d");
    expect(() => redirectUrl(config, "x", "https://app.adiuva.test.evil.example/", "d")).toThrow();
    expect(() => redirectUrl(config, "x", "http://app.adiuva.test/", "d")).toThrow();
  });

  test("an unparseable redirect origin fails at startup, naming the variable", () => {
    expect(() => billingConfig(env({ BILLING_REDIRECT_ORIGINS: "not a url" }))).toThrow(ConfigError);
  });

  test("maps configured prices to tiers and nothing else", () => {
    const config = billingConfig(env({ STRIPE_PRICE_PRO: "price_a", STRIPE_PRICE_TEAM: "price_c" }));
    expect([tierForPrice(config, "price_a"), tierForPrice(config, "price_c"), tierForPrice(config, "price_b")]).toEqual(
      ["pro", "team", null],
    );
    expect(tierForPrice(config, undefined)).toBeNull();
  });

  test("no secret key: no Stripe client, so Stripe-backed routes answer 503", () => {
    expect(billingConfig(env()).stripe).toBeUndefined();
    expect(billingConfig(env({ STRIPE_SECRET_KEY: "sk_test_x" })).stripe).toBeDefined();
  });
});

describe("a deployment without Stripe keys", () => {
  test("starts, and its Stripe-backed routes answer 503 billing_unconfigured", async () => {
    await using ctx = await createTestContext();
    const server = await ctx.start([createBillingService], { service: "billing" });
    const token = await ctx.token("user-unconfigured");
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/api/v1/billing${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const checkout = await post("/checkout", { tier: "pro" }, { authorization: `Bearer ${token}` });
    expect(checkout.status).toBe(503);
    // The answer names what the operator must set.
    expect(((await checkout.json()) as { error: { code: string; details: unknown } }).error).toMatchObject({
      code: "billing_unconfigured",
      details: { missing: ["STRIPE_SECRET_KEY", "STRIPE_PRICE_PRO"] },
    });
    expect((await post("/webhook", { id: "evt_1" }, { "stripe-signature": "t=1,v1=00" })).status).toBe(503);
    const view = await fetch(`${server.url}/api/v1/billing/subscription`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await view.json()).toEqual({
      tier: "free",
      status: "none",
      current_period_end: null,
      cancel_at_period_end: false,
    });
  });
});
