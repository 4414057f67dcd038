// Strategy: see harness.ts. Publishers' Express accounts and onboarding through the real SDK against
// the fake Stripe API; the account's state reaches us both by reading Stripe and by a signed
// `account.updated` Connect event.
import { afterAll, describe, expect, test } from "bun:test";
import {
  createOnboardingLink,
  createPublisherAccount,
  outcomeOf,
  pluginPaymentsConfig,
  readPublisherAccount,
  verifyPaymentEvent,
} from "../../src/plugins/payments";
import { loadEnv } from "../../src/shared/env";
import { ServiceError } from "../../src/shared/errors";
import { silentLogger } from "../../src/shared/logger";
import { CONNECT_WEBHOOK_SECRET, isOwnIdempotencyKey, startPayments } from "./harness";

const h = startPayments();
afterAll(() => h.stop());

const rejection = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
};

describe("publisher accounts", () => {
  test("an Express account is created for the publisher, unable to be paid until onboarded", async () => {
    const publisherId = crypto.randomUUID();
    const status = await createPublisherAccount(h.deps, { publisherId, email: "dev@example.com", country: "IT" });
    expect(status).toEqual({
      accountId: expect.stringMatching(/^acct_/),
      chargesEnabled: false,
      payoutsEnabled: false,
      detailsSubmitted: false,
      currentlyDue: expect.arrayContaining(["external_account"]),
      disabledReason: "requirements.past_due",
    });
    const [request] = h.fake.requestsTo("POST", "/v1/accounts").slice(-1);
    expect(request?.params).toEqual({
      type: "express",
      email: "dev@example.com",
      country: "IT",
      capabilities: { card_payments: { requested: "true" }, transfers: { requested: "true" } },
      metadata: { kind: "plugin_publisher", publisher_id: publisherId },
    });
    expect(request?.idempotencyKey).toBe(`publisher-account:${publisherId}`);
  });

  test("a retry for the same publisher gets the same account back", async () => {
    const publisherId = crypto.randomUUID();
    const first = await createPublisherAccount(h.deps, { publisherId });
    const again = await createPublisherAccount(h.deps, { publisherId });
    expect(again.accountId).toBe(first.accountId);
    const accounts = [...h.fake.accounts.values()].filter(
      (account) => (account.metadata as Record<string, string>).publisher_id === publisherId,
    );
    expect(accounts).toHaveLength(1);
  });

  test("the onboarding link is Stripe's, for that account, returning to our pages", async () => {
    const { accountId } = await h.publisher("none");
    const before = Date.now();
    const link = await createOnboardingLink(h.deps, {
      accountId,
      refreshUrl: "https://app.adiuva.test/developers/payments/refresh",
      returnUrl: "https://app.adiuva.test/developers/payments/done",
    });
    expect(link.url).toStartWith(`${h.fake.url}/setup/e/${accountId}/`);
    expect(link.expiresAt.getTime()).toBeGreaterThan(before);
    expect(h.fake.accountLinks.at(-1)).toMatchObject({
      account: accountId,
      type: "account_onboarding",
      refresh_url: "https://app.adiuva.test/developers/payments/refresh",
      return_url: "https://app.adiuva.test/developers/payments/done",
    });
    // Each request is a new link: a used or expired one cannot be handed out again.
    const second = await createOnboardingLink(h.deps, {
      accountId,
      refreshUrl: "https://app.adiuva.test/r",
      returnUrl: "https://app.adiuva.test/d",
    });
    expect(second.url).not.toBe(link.url);
    const keys = h.fake.requestsTo("POST", "/v1/account_links").map((request) => request.idempotencyKey);
    expect(keys.filter(isOwnIdempotencyKey)).toEqual([]);
  });

  test("a link for an account Stripe does not know is 404", async () => {
    const error = await rejection(
      createOnboardingLink(h.deps, {
        accountId: "acct_nobody",
        refreshUrl: "https://a.test/r",
        returnUrl: "https://a.test/d",
      }),
    );
    expect([error.status, error.code]).toEqual([404, "not_found"]);
  });

  test("the account's status is read from Stripe: nothing before onboarding, everything after", async () => {
    const { accountId } = await h.publisher("none");
    expect(await readPublisherAccount(h.deps, accountId)).toMatchObject({
      chargesEnabled: false,
      payoutsEnabled: false,
      detailsSubmitted: false,
    });
    h.fake.completeOnboarding(accountId);
    expect(await readPublisherAccount(h.deps, accountId)).toEqual({
      accountId,
      chargesEnabled: true,
      payoutsEnabled: true,
      detailsSubmitted: true,
      currentlyDue: [],
      disabledReason: null,
    });
  });

  test("details submitted but still being verified: not payable yet", async () => {
    const { accountId } = await h.publisher("unverified");
    expect(await readPublisherAccount(h.deps, accountId)).toMatchObject({
      chargesEnabled: false,
      detailsSubmitted: true,
      disabledReason: "requirements.pending_verification",
    });
  });

  test("an account Stripe does not know is 404", async () => {
    const error = await rejection(readPublisherAccount(h.deps, "acct_gone"));
    expect([error.status, error.code]).toEqual([404, "not_found"]);
  });

  test("Stripe down is 503 stripe_unavailable", async () => {
    h.fake.unavailable = true;
    try {
      const error = await rejection(createPublisherAccount(h.deps, { publisherId: crypto.randomUUID() }));
      expect([error.status, error.code]).toEqual([503, "stripe_unavailable"]);
    } finally {
      h.fake.unavailable = false;
    }
  });

  test("without STRIPE_SECRET_KEY every call is 503 naming the variable", async () => {
    const config = pluginPaymentsConfig(loadEnv({ SERVICE_NAME: "plugins" }));
    const error = await rejection(
      createPublisherAccount({ config, logger: silentLogger() }, { publisherId: crypto.randomUUID() }),
    );
    expect([error.status, error.code, error.details]).toEqual([
      503,
      "plugin_payments_unconfigured",
      { missing: ["STRIPE_SECRET_KEY"] },
    ]);
  });
});

describe("account.updated", () => {
  test("the signed Connect event of a finished onboarding says the publisher can be paid", async () => {
    const { publisherId, accountId } = await h.publisher("none");
    const { event: payload } = h.fake.completeOnboarding(accountId);
    // The Connect endpoint signs with its own secret.
    const event = await verifyPaymentEvent(h.config, h.deps.logger, {
      payload,
      signature: await h.sign(payload, CONNECT_WEBHOOK_SECRET),
    });
    expect(event.account).toBe(accountId);
    expect(outcomeOf(event)).toEqual({
      kind: "publisher_account_updated",
      eventId: JSON.parse(payload).id,
      occurredAt: JSON.parse(payload).created * 1000,
      publisherId,
      account: {
        accountId,
        chargesEnabled: true,
        payoutsEnabled: true,
        detailsSubmitted: true,
        currentlyDue: [],
        disabledReason: null,
      },
    });
  });

  test("an update while Stripe verifies says submitted, not payable", async () => {
    const { accountId } = await h.publisher("none");
    const { event: payload } = h.fake.completeOnboarding(accountId, { verified: false });
    const event = await verifyPaymentEvent(h.config, h.deps.logger, { payload, signature: await h.sign(payload) });
    expect(outcomeOf(event)).toMatchObject({
      kind: "publisher_account_updated",
      account: { chargesEnabled: false, payoutsEnabled: false, detailsSubmitted: true },
    });
  });

  test("an account not made for a publisher is ignored", async () => {
    const stranger = h.fake.event("account.updated", { id: "acct_x", object: "account", metadata: {} });
    const event = await verifyPaymentEvent(h.config, h.deps.logger, {
      payload: stranger,
      signature: await h.sign(stranger),
    });
    expect(outcomeOf(event)).toMatchObject({ kind: "ignored", reason: "not_ours", type: "account.updated" });
  });
});
