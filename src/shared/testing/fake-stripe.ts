import Stripe from "stripe";

/** One request as the fake received it, with the form body decoded the way Stripe decodes it. */
export interface RecordedRequest {
  method: string;
  path: string;
  params: Record<string, unknown>;
  idempotencyKey: string | null;
  stripeVersion: string | null;
}

type StripeObject = Record<string, unknown> & { id: string };

interface StoredIdempotency {
  fingerprint: string;
  status: number;
  body: unknown;
}

export interface FakeStripeOptions {
  /** The secret key the fake accepts as Bearer token. */
  apiKey?: string;
}

/** An event Stripe would send after a change the fake made itself, as `event()` builds it. */
export interface EmittedEvent {
  type: string;
  payload: string;
}

/**
 * A small in-memory Stripe API on a free port: customers (create, retrieve, delete), Checkout Sessions
 * (create, retrieve), subscriptions (retrieve/update/cancel; a canceled one refuses updates, as
 * Stripe does), invoices (list by customer) and billing portal sessions, speaking Stripe's form-encoded requests and
 * JSON error shape, honouring Idempotency-Key like Stripe does (same key and body: the stored
 * response; same key, other body: 400). The real SDK talks to it through host/port/protocol.
 *
 * Connect, as a marketplace uses it: Express accounts (create, retrieve, delete) and their onboarding links;
 * Checkout Sessions paying a connected account (destination charges in `payment` mode with
 * `payment_intent_data[application_fee_amount]`, subscriptions with
 * `subscription_data[application_fee_percent]`), which record the payment intent, the charge, the
 * transfer and the platform's application fee; refunds (by payment intent or charge); the payments
 * of subscription invoices (`/v1/invoice_payments`, listed by invoice or by payment intent: since the
 * 2025-03-31 API the only link from a payment to its invoice).
 */
export class FakeStripe {
  readonly apiKey: string;
  readonly requests: RecordedRequest[] = [];
  readonly customers = new Map<string, StripeObject>();
  readonly sessions = new Map<string, StripeObject>();
  readonly subscriptions = new Map<string, StripeObject>();
  readonly portalSessions = new Map<string, StripeObject>();
  /** Invoices by id; `completeCheckout` adds the paid first invoice of the subscription. */
  readonly invoices = new Map<string, StripeObject>();
  /** Connected (Express) accounts by id; `completeOnboarding` lets one take charges. */
  readonly accounts = new Map<string, StripeObject>();
  /** Every account link handed out, oldest first, with the parameters it was created with. */
  readonly accountLinks: Array<Record<string, unknown>> = [];
  /** Prices created inline by a session's `line_items[][price_data]`. */
  readonly prices = new Map<string, StripeObject>();
  readonly paymentIntents = new Map<string, StripeObject>();
  readonly charges = new Map<string, StripeObject>();
  /** What each destination charge moved to its connected account (before the application fee). */
  readonly transfers = new Map<string, StripeObject>();
  /** The platform's share of each destination charge or subscription invoice: what it earned. */
  readonly applicationFees = new Map<string, StripeObject>();
  readonly refunds = new Map<string, StripeObject>();
  /** Each paid subscription invoice's payment (`invoice_payment`: the invoice and its payment intent). */
  readonly invoicePayments = new Map<string, StripeObject>();
  /**
   * Events Stripe would send after the changes the fake makes itself (onboarding, payments, refunds,
   * failed invoice payments, cancellations), oldest first. Tests deliver them; the fake sends nothing.
   */
  readonly emitted: EmittedEvent[] = [];
  /** While true every API call answers 503, as during a Stripe incident. */
  unavailable = false;
  private readonly idempotency = new Map<string, StoredIdempotency>();
  private server?: ReturnType<typeof Bun.serve>;
  private sequence = 0;
  /** Event `created` seconds; advanced by every event so tests can tell older from newer. */
  private clock = Math.floor(Date.now() / 1000);

  constructor(options: FakeStripeOptions = {}) {
    this.apiKey = options.apiKey ?? "sk_test_fake";
  }

  start(): string {
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => this.handle(request) });
    return this.url;
  }

  get url(): string {
    if (!this.server) throw new Error("fake stripe not started");
    return `http://127.0.0.1:${this.server.port}`;
  }

  stop(): void {
    this.server?.stop(true);
  }

  /** Requests to one endpoint, e.g. `requestsTo("POST", "/v1/customers")`. */
  requestsTo(method: string, path: string): RecordedRequest[] {
    return this.requests.filter((request) => request.method === method && request.path === path);
  }

  /** The payloads of the emitted events of one type, oldest first. */
  emittedOf(type: string): string[] {
    return this.emitted.filter((event) => event.type === type).map((event) => event.payload);
  }

  /**
   * What Stripe does when the customer pays a `subscription` session: an active subscription for the
   * session's price (a customer created if the session named none), its paid first invoice and, for a
   * subscription paying a connected account, the charge, the transfer and the platform's fee
   * (`application_fee_percent` of the invoice). The session names that invoice (`invoice`), as
   * Stripe's does; `paymentIntent` and `charge` are its payment's (null without a connected account).
   * Emits `checkout.session.completed`, then the first invoice's `invoice.paid`
   * (`billing_reason: subscription_create`).
   */
  completeCheckout(sessionId: string): {
    session: StripeObject;
    subscription: StripeObject;
    invoice: StripeObject;
    paymentIntent: StripeObject | null;
    charge: StripeObject | null;
    event: string;
  } {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    if (session.mode === "payment") throw new Error(`session ${sessionId} is in payment mode: use completePayment`);
    const lineItems = session.line_items as Array<{ price: string; quantity?: string }>;
    const data = (session.subscription_data ?? {}) as {
      metadata?: Record<string, string>;
      application_fee_percent?: string;
      transfer_data?: { destination?: string };
    };
    const customerId = session.customer ? String(session.customer) : this.newCustomer().id;
    const price = this.prices.get(lineItems[0]?.price ?? "");
    const subscription = this.createSubscription({
      customer: customerId,
      price: lineItems[0]?.price ?? "price_unknown",
      metadata: data.metadata ?? {},
      applicationFeePercent:
        data.application_fee_percent === undefined ? undefined : Number(data.application_fee_percent),
      transferDestination: data.transfer_data?.destination,
    });
    const customer = this.customers.get(customerId);
    // A price the session created inline has its amount; the tiers' configured prices cost 19 €.
    const amount = price ? Number(price.unit_amount) : 1900;
    const currency = price ? String(price.currency) : "eur";
    Object.assign(session, {
      status: "complete",
      payment_status: "paid",
      customer: customerId,
      subscription: subscription.id,
      // What Stripe adds once the customer has paid: their address and the amount, private to them.
      customer_details: { email: customer?.email ?? null, name: null },
      amount_total: amount,
      currency,
    });
    const invoice = {
      ...this.invoice(subscription.id, "paid", { billingReason: "subscription_create" }),
      amount_due: amount,
      amount_paid: amount,
      currency,
    };
    this.invoices.set(invoice.id, { ...invoice, number: `FAKE-${this.invoices.size + 1}`, created: this.tick() });
    session.invoice = invoice.id;
    let payment: { paymentIntent: StripeObject; charge: StripeObject } | null = null;
    if (data.transfer_data?.destination) {
      const percent = Number(data.application_fee_percent ?? 0);
      // A subscription's charges carry none of the subscription's metadata, as Stripe's.
      payment = this.charge({
        amount,
        currency,
        customer: customerId,
        destination: data.transfer_data.destination,
        fee: Math.round((amount * percent) / 100),
        metadata: {},
      });
      this.payInvoice(invoice.id, payment.paymentIntent);
    }
    const event = this.emit("checkout.session.completed", session);
    this.emit("invoice.paid", this.invoices.get(invoice.id) ?? invoice);
    return {
      session,
      subscription,
      invoice: this.invoices.get(invoice.id) ?? invoice,
      paymentIntent: payment?.paymentIntent ?? null,
      charge: payment?.charge ?? null,
      event,
    };
  }

  /**
   * A renewal the card pays: the subscription's next period starts (`active` again if it was behind),
   * with its paid invoice (`billing_reason: subscription_cycle`, the price's amount) and, for a
   * subscription paying a connected account, the charge, the transfer and the platform's
   * `application_fee_percent` of it (`paymentIntent` and `charge`; null without a connected account).
   * Emits `invoice.paid` and `invoice.payment_succeeded` (the same invoice), then
   * `customer.subscription.updated` when the status changed.
   */
  renewSubscription(subscriptionId: string): {
    invoice: StripeObject;
    subscription: StripeObject;
    paymentIntent: StripeObject | null;
    charge: StripeObject | null;
    paid: string;
    succeeded: string;
  } {
    const current = this.subscriptions.get(subscriptionId);
    if (!current) throw new Error(`no subscription ${subscriptionId}`);
    if (current.status === "canceled") throw new Error(`subscription ${subscriptionId} is canceled`);
    const previousStatus = current.status;
    const items = current.items as { data: StripeObject[] };
    for (const item of items.data) {
      item.current_period_start = item.current_period_end;
      item.current_period_end = Number(item.current_period_end) + 30 * 24 * 3600;
    }
    const invoice = this.invoice(subscriptionId, "paid", { billingReason: "subscription_cycle" });
    this.invoices.set(invoice.id, { ...invoice, number: `FAKE-${this.invoices.size + 1}`, created: this.tick() });
    const destination = (current.transfer_data as { destination?: string } | null)?.destination;
    let payment: { paymentIntent: StripeObject; charge: StripeObject } | null = null;
    if (destination) {
      const amount = Number(invoice.amount_paid);
      payment = this.charge({
        amount,
        currency: String(invoice.currency),
        customer: current.customer ? String(current.customer) : null,
        destination,
        fee: Math.round((amount * Number(current.application_fee_percent ?? 0)) / 100),
        metadata: {},
      });
      this.payInvoice(invoice.id, payment.paymentIntent);
    }
    const subscription = this.updateSubscription(subscriptionId, { status: "active" });
    const paid = this.emit("invoice.paid", invoice);
    const succeeded = this.emit("invoice.payment_succeeded", invoice);
    if (previousStatus !== "active") {
      this.emit("customer.subscription.updated", subscription, { previousAttributes: { status: previousStatus } });
    }
    return {
      invoice,
      subscription,
      paymentIntent: payment?.paymentIntent ?? null,
      charge: payment?.charge ?? null,
      paid,
      succeeded,
    };
  }

  /**
   * What Stripe does when the customer pays a `payment` session: a succeeded payment intent with its
   * charge and, for a destination charge, the transfer to the connected account and the platform's
   * application fee (`payment_intent_data[application_fee_amount]`). Emits `checkout.session.completed`.
   */
  completePayment(sessionId: string): {
    session: StripeObject;
    paymentIntent: StripeObject;
    charge: StripeObject;
    applicationFee: StripeObject | null;
    event: string;
  } {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    if (session.mode !== "payment")
      throw new Error(`session ${sessionId} is not in payment mode: use completeCheckout`);
    if (session.status === "complete") throw new Error(`session ${sessionId} is already paid`);
    const data = (session.payment_intent_data ?? {}) as {
      metadata?: Record<string, string>;
      application_fee_amount?: string;
      transfer_data?: { destination?: string };
    };
    const amount = Number(session.amount_total ?? 1900);
    const currency = String(session.currency ?? "eur");
    const customerId = session.customer ? String(session.customer) : null;
    const { paymentIntent, charge, applicationFee } = this.charge({
      amount,
      currency,
      customer: customerId,
      destination: data.transfer_data?.destination,
      fee: data.application_fee_amount === undefined ? null : Number(data.application_fee_amount),
      metadata: data.metadata ?? {},
    });
    const email = customerId ? (this.customers.get(customerId)?.email ?? null) : (session.customer_email ?? null);
    Object.assign(session, {
      status: "complete",
      payment_status: "paid",
      payment_intent: paymentIntent.id,
      customer_details: { email, name: null },
    });
    const event = this.emit("checkout.session.completed", session);
    return { session, paymentIntent, charge, applicationFee, event };
  }

  /**
   * The publisher finishes Stripe's onboarding: details submitted and, once `verified` (the default),
   * its requested capabilities active and charges and payouts enabled. Emits `account.updated` as a
   * Connect event (with `account` and `previous_attributes`).
   */
  completeOnboarding(
    accountId: string,
    options: { verified?: boolean } = {},
  ): { account: StripeObject; event: string } {
    const account = this.accounts.get(accountId);
    if (!account) throw new Error(`no account ${accountId}`);
    const verified = options.verified ?? true;
    const previous = {
      charges_enabled: account.charges_enabled,
      payouts_enabled: account.payouts_enabled,
      details_submitted: account.details_submitted,
      capabilities: structuredClone(account.capabilities),
      requirements: structuredClone(account.requirements),
    };
    const capabilities = account.capabilities as Record<string, string>;
    Object.assign(account, {
      details_submitted: true,
      charges_enabled: verified,
      payouts_enabled: verified,
      capabilities: Object.fromEntries(
        Object.keys(capabilities).map((name) => [name, verified ? "active" : "pending"]),
      ),
      requirements: verified
        ? requirements([], null)
        : { ...requirements([], "requirements.pending_verification"), pending_verification: ["individual.id_number"] },
    });
    const event = this.emit("account.updated", account, { account: accountId, previousAttributes: previous });
    return { account: structuredClone(account), event };
  }

  /**
   * A renewal the card does not pay: the subscription goes `past_due` while Stripe retries, or, on
   * the `final` attempt, `unpaid` with no retry scheduled (`next_payment_attempt: null`). Emits
   * `invoice.payment_failed` and `customer.subscription.updated`.
   */
  failInvoicePayment(
    subscriptionId: string,
    options: { final?: boolean } = {},
  ): { invoice: StripeObject; subscription: StripeObject; event: string } {
    const current = this.subscriptions.get(subscriptionId);
    if (!current) throw new Error(`no subscription ${subscriptionId}`);
    const final = options.final ?? false;
    const previousStatus = current.status;
    const invoice = this.invoice(subscriptionId, "open", { final });
    this.invoices.set(invoice.id, invoice);
    const subscription = this.updateSubscription(subscriptionId, { status: final ? "unpaid" : "past_due" });
    const event = this.emit("invoice.payment_failed", invoice);
    this.emit("customer.subscription.updated", subscription, { previousAttributes: { status: previousStatus } });
    return { invoice, subscription, event };
  }

  /** Where Stripe sends the browser after payment: `success_url` with the session id filled in. */
  successRedirect(sessionId: string): string {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    return String(session.success_url).replaceAll("{CHECKOUT_SESSION_ID}", sessionId);
  }

  createSubscription(input: {
    customer: string;
    price: string;
    metadata?: Record<string, string>;
    /** Connect: the platform's share of each invoice, and the account the rest goes to. */
    applicationFeePercent?: number;
    transferDestination?: string;
  }): StripeObject {
    const now = this.tick();
    const id = this.id("sub");
    const subscription: StripeObject = {
      id,
      object: "subscription",
      customer: input.customer,
      status: "active",
      cancel_at_period_end: false,
      canceled_at: null,
      ended_at: null,
      created: now,
      metadata: input.metadata ?? {},
      application_fee_percent: input.applicationFeePercent ?? null,
      transfer_data: input.transferDestination
        ? { amount_percent: null, destination: input.transferDestination }
        : null,
      items: {
        object: "list",
        data: [this.item(id, input.price, now)],
      },
    };
    this.subscriptions.set(id, subscription);
    return subscription;
  }

  /** Changes a subscription the way the dashboard or the portal would. */
  updateSubscription(id: string, changes: { status?: string; price?: string; cancel_at_period_end?: boolean }) {
    const subscription = this.subscriptions.get(id);
    if (!subscription) throw new Error(`no subscription ${id}`);
    if (changes.status !== undefined) subscription.status = changes.status;
    if (changes.cancel_at_period_end !== undefined) subscription.cancel_at_period_end = changes.cancel_at_period_end;
    if (changes.price !== undefined) {
      const items = subscription.items as { data: StripeObject[] };
      const first = items.data[0];
      items.data[0] = { ...this.item(id, changes.price, this.tick()), id: first?.id ?? this.id("si") };
    }
    if (changes.status === "canceled") {
      subscription.ended_at = this.tick();
      subscription.canceled_at = subscription.ended_at;
    }
    return structuredClone(subscription);
  }

  /**
   * A webhook payload with a snapshot of `object`, pretty-printed as Stripe sends it (so a server
   * that re-serialises the body before verifying fails); each event is one second newer than the last.
   */
  event(
    type: string,
    object: Record<string, unknown>,
    options: {
      id?: string;
      created?: number;
      /** A Connect event's connected account (`account.updated`). */
      account?: string;
      /** `data.previous_attributes`: what an `*.updated` event's change replaced. */
      previousAttributes?: Record<string, unknown>;
    } = {},
  ): string {
    return JSON.stringify(
      {
        id: options.id ?? this.id("evt"),
        object: "event",
        ...(options.account ? { account: options.account } : {}),
        api_version: Stripe.API_VERSION,
        created: options.created ?? this.tick(),
        data: {
          object: structuredClone(object),
          ...(options.previousAttributes ? { previous_attributes: structuredClone(options.previousAttributes) } : {}),
        },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      },
      null,
      2,
    );
  }

  /**
   * An invoice snapshot for `invoice.*` events, linked to its subscription the current API's way, for
   * one period of its price (a price of no known amount: 19 €). An open one has failed once and
   * Stripe retries it in three days, unless it was the `final` attempt. `billingReason`: why Stripe
   * made it (`subscription_cycle`, a renewal, by default).
   */
  invoice(
    subscriptionId: string,
    status: "paid" | "open",
    options: { final?: boolean; billingReason?: string } = {},
  ): StripeObject {
    const subscription = this.subscriptions.get(subscriptionId);
    const retries = status === "open" && !options.final;
    const items = (subscription?.items as { data: Array<{ price?: { unit_amount?: number; currency?: string } }> })
      ?.data;
    const price = items?.[0]?.price;
    const amount = typeof price?.unit_amount === "number" ? price.unit_amount : 1900;
    return {
      id: this.id("in"),
      object: "invoice",
      customer: subscription?.customer ?? null,
      status,
      billing_reason: options.billingReason ?? "subscription_cycle",
      amount_due: amount,
      amount_paid: status === "paid" ? amount : 0,
      amount_remaining: status === "paid" ? 0 : amount,
      currency: price?.currency ?? "eur",
      attempt_count: options.final ? 4 : 1,
      attempted: true,
      next_payment_attempt: retries ? this.clock + 3 * 24 * 3600 : null,
      parent: {
        type: "subscription_details",
        quote_details: null,
        subscription_details: { subscription: subscriptionId, metadata: subscription?.metadata ?? {} },
      },
    };
  }

  /** Records that a payment intent paid an invoice, as Stripe's `invoice_payment` object. */
  private payInvoice(invoiceId: string, paymentIntent: StripeObject): void {
    const now = this.tick();
    const payment: StripeObject = {
      id: this.id("inpay"),
      object: "invoice_payment",
      amount_paid: paymentIntent.amount,
      amount_requested: paymentIntent.amount,
      created: now,
      currency: paymentIntent.currency,
      invoice: invoiceId,
      is_default: true,
      livemode: false,
      payment: { type: "payment_intent", payment_intent: paymentIntent.id },
      status: "paid",
      status_transitions: { canceled_at: null, paid_at: now },
    };
    this.invoicePayments.set(payment.id, payment);
  }

  private item(subscriptionId: string, price: string, now: number): StripeObject {
    return {
      id: this.id("si"),
      object: "subscription_item",
      subscription: subscriptionId,
      price: structuredClone(this.prices.get(price)) ?? { id: price, object: "price" },
      quantity: 1,
      current_period_start: now,
      current_period_end: now + 30 * 24 * 3600,
    };
  }

  private tick(): number {
    this.clock += 1;
    return this.clock;
  }

  /** Builds an event as `event()` does and records it as sent by Stripe. */
  private emit(type: string, object: Record<string, unknown>, options: Parameters<FakeStripe["event"]>[2] = {}) {
    const payload = this.event(type, object, options);
    this.emitted.push({ type, payload });
    return payload;
  }

  /** A customer as Checkout creates one when the session named none. */
  private newCustomer(): StripeObject {
    const customer = { id: this.id("cus"), object: "customer", metadata: {}, email: null };
    this.customers.set(customer.id, customer);
    return customer;
  }

  /**
   * A succeeded payment: the payment intent and its charge and, when `destination` is set, a
   * destination charge's transfer of the whole amount to that account and the application fee the
   * platform takes back from it (the payment on the connected account, `py_`, is what the fee is on).
   */
  private charge(input: {
    amount: number;
    currency: string;
    customer: string | null;
    destination?: string;
    fee: number | null;
    metadata: Record<string, string>;
  }): { paymentIntent: StripeObject; charge: StripeObject; applicationFee: StripeObject | null } {
    const now = this.tick();
    const paymentIntentId = this.id("pi");
    const chargeId = this.id("ch");
    let transfer: StripeObject | null = null;
    let applicationFee: StripeObject | null = null;
    if (input.destination) {
      const destinationPayment = this.id("py");
      transfer = {
        id: this.id("tr"),
        object: "transfer",
        amount: input.amount,
        amount_reversed: 0,
        currency: input.currency,
        destination: input.destination,
        destination_payment: destinationPayment,
        source_transaction: chargeId,
        reversed: false,
        created: now,
      };
      this.transfers.set(transfer.id, transfer);
      if (input.fee !== null) {
        applicationFee = {
          id: this.id("fee"),
          object: "application_fee",
          account: input.destination,
          amount: input.fee,
          amount_refunded: 0,
          application: "ca_fake_platform",
          balance_transaction: null,
          charge: destinationPayment,
          originating_transaction: chargeId,
          currency: input.currency,
          livemode: false,
          refunded: false,
          refunds: { object: "list", data: [], has_more: false, url: "/v1/application_fees/refunds" },
          created: now,
        };
        this.applicationFees.set(applicationFee.id, applicationFee);
      }
    }
    const transferData = input.destination ? { destination: input.destination } : null;
    const paymentIntent: StripeObject = {
      id: paymentIntentId,
      object: "payment_intent",
      amount: input.amount,
      amount_received: input.amount,
      currency: input.currency,
      customer: input.customer,
      status: "succeeded",
      application_fee_amount: input.fee,
      transfer_data: transferData,
      metadata: input.metadata,
      latest_charge: chargeId,
      livemode: false,
      created: now,
    };
    const charge: StripeObject = {
      id: chargeId,
      object: "charge",
      amount: input.amount,
      amount_captured: input.amount,
      amount_refunded: 0,
      application_fee: applicationFee?.id ?? null,
      application_fee_amount: input.fee,
      captured: true,
      paid: true,
      refunded: false,
      disputed: false,
      status: "succeeded",
      currency: input.currency,
      customer: input.customer,
      payment_intent: paymentIntentId,
      // Stripe copies the payment intent's metadata onto the charge it creates.
      metadata: structuredClone(input.metadata),
      transfer: transfer?.id ?? null,
      transfer_data: transferData && { amount: null, destination: input.destination },
      balance_transaction: null,
      livemode: false,
      created: now,
    };
    this.paymentIntents.set(paymentIntentId, paymentIntent);
    this.charges.set(chargeId, charge);
    return { paymentIntent, charge, applicationFee };
  }

  private id(prefix: string): string {
    this.sequence += 1;
    return `${prefix}_fake${this.sequence.toString().padStart(6, "0")}${crypto.randomUUID().slice(0, 8)}`;
  }

  private async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = request.method === "GET" || request.method === "DELETE" ? url.search.slice(1) : await request.text();
    const params = decodeForm(text);
    const idempotencyKey = request.headers.get("idempotency-key");
    this.requests.push({
      method: request.method,
      path: url.pathname,
      params,
      idempotencyKey,
      stripeVersion: request.headers.get("stripe-version"),
    });
    if (request.headers.get("authorization") !== `Bearer ${this.apiKey}`) {
      return stripeError(401, "invalid_request_error", "Invalid API Key provided");
    }
    if (this.unavailable) return stripeError(503, "api_error", "Stripe is unavailable");
    const cacheKey = idempotencyKey ? `${request.method} ${idempotencyKey}` : undefined;
    const fingerprint = `${url.pathname}?${text}`;
    if (cacheKey && request.method === "POST") {
      const stored = this.idempotency.get(cacheKey);
      if (stored && stored.fingerprint !== fingerprint) {
        return stripeError(
          400,
          "idempotency_error",
          "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        );
      }
      if (stored)
        return Response.json(stored.body, { status: stored.status, headers: { "idempotent-replayed": "true" } });
    }
    const response = this.route(request.method, url.pathname, params);
    if (cacheKey && request.method === "POST") {
      this.idempotency.set(cacheKey, { fingerprint, status: response.status, body: response.body });
    }
    return Response.json(response.body, { status: response.status });
  }

  private route(method: string, path: string, params: Record<string, unknown>): { status: number; body: unknown } {
    const ok = (body: unknown) => ({ status: 200, body: structuredClone(body) });
    const missing = (what: string, id: string) => ({
      status: 404,
      body: errorBody("invalid_request_error", `No such ${what}: '${id}'`, "resource_missing"),
    });
    const [, version, first, second, third] = path.split("/");
    if (version !== "v1") return missing("path", path);
    if (first === "customers" && method === "POST" && !second) {
      const customer = {
        id: this.id("cus"),
        object: "customer",
        metadata: params.metadata ?? {},
        email: params.email ?? null,
      };
      this.customers.set(customer.id, customer);
      return ok(customer);
    }
    if (first === "customers" && method === "GET" && second) {
      const customer = this.customers.get(second);
      return customer ? ok(customer) : missing("customer", second);
    }
    if (first === "customers" && method === "DELETE" && second) {
      if (!this.customers.delete(second)) return missing("customer", second);
      // Stripe cancels the customer's subscriptions with it.
      for (const subscription of this.subscriptions.values()) {
        if (subscription.customer === second && subscription.status !== "canceled") {
          this.updateSubscription(subscription.id, { status: "canceled" });
        }
      }
      return ok({ id: second, object: "customer", deleted: true });
    }
    if (first === "invoices" && method === "GET" && !second) {
      const data = [...this.invoices.values()].filter((invoice) => invoice.customer === params.customer);
      return ok({ object: "list", data, has_more: false, url: "/v1/invoices" });
    }
    if (first === "checkout" && second === "sessions" && method === "POST" && !third) {
      // Without a customer Checkout collects the buyer's details (and creates a customer for a subscription).
      if (params.customer !== undefined && !this.customers.has(String(params.customer))) {
        return missing("customer", String(params.customer));
      }
      const refused = this.refuseCheckout(params);
      if (refused) return refused;
      const id = this.id("cs_test");
      // A copy: the recorded request keeps what the client sent, the session the prices made of it.
      const accepted = structuredClone(params);
      this.createInlinePrices(accepted);
      const session = {
        ...accepted,
        ...this.inlinePrices(params),
        id,
        object: "checkout.session",
        status: "open",
        payment_status: "unpaid",
        payment_intent: null,
        subscription: null,
        invoice: null,
        url: `${this.url}/c/pay/${id}`,
        expires_at: Math.floor(Date.now() / 1000) + 24 * 3600,
      };
      this.sessions.set(id, session);
      return ok(session);
    }
    if (first === "accounts" && method === "POST" && !second) return this.createAccount(params);
    if (first === "accounts" && method === "GET" && second) {
      const account = this.accounts.get(second);
      return account ? ok(account) : missing("account", second);
    }
    if (first === "accounts" && method === "DELETE" && second && !third) {
      if (!this.accounts.delete(second)) return missing("account", second);
      return ok({ id: second, object: "account", deleted: true });
    }
    if (first === "invoice_payments" && method === "GET" && !second) return ok(this.listInvoicePayments(params));
    if (first === "account_links" && method === "POST" && !second) return this.createAccountLink(params);
    if (first === "refunds" && method === "POST" && !second) return this.createRefund(params);
    const readable: Record<string, [string, Map<string, StripeObject>]> = {
      payment_intents: ["payment_intent", this.paymentIntents],
      charges: ["charge", this.charges],
      refunds: ["refund", this.refunds],
      application_fees: ["application_fee", this.applicationFees],
    };
    const store = first ? readable[first] : undefined;
    if (store && method === "GET" && second && !third) {
      const found = store[1].get(second);
      return found ? ok(found) : missing(store[0], second);
    }
    if (first === "checkout" && second === "sessions" && method === "GET" && third) {
      const session = this.sessions.get(third);
      return session ? ok(session) : missing("checkout.session", third);
    }
    if (first === "subscriptions" && second) {
      const subscription = this.subscriptions.get(second);
      if (!subscription) return missing("subscription", second);
      if (method === "GET") return ok(subscription);
      if (method === "POST" && subscription.status === "canceled") {
        const fields = Object.keys(params).filter((key) => !["metadata", "cancellation_details"].includes(key));
        if (fields.length > 0) {
          return invalidRequest(
            "A canceled subscription can only update its cancellation_details and metadata.",
            fields[0] as string,
            "invalid_canceled_subscription_fields",
          );
        }
      }
      if (method === "POST") return ok(this.applyUpdate(subscription, params));
      if (method === "DELETE") {
        const canceled = this.updateSubscription(second, { status: "canceled" });
        this.emit("customer.subscription.deleted", canceled);
        return ok(canceled);
      }
    }
    if (first === "billing_portal" && second === "sessions" && method === "POST") {
      if (!params.customer || !this.customers.has(String(params.customer))) {
        return missing("customer", String(params.customer));
      }
      const id = this.id("bps");
      const session = { ...params, id, object: "billing_portal.session", url: `${this.url}/p/session/${id}` };
      this.portalSessions.set(id, session);
      return ok(session);
    }
    return missing("path", path);
  }

  /**
   * Stripe's refusals of a Connect Checkout Session: intent data outside `payment` mode, subscription
   * data outside `subscription` mode, an application fee without a destination, a destination that
   * does not exist or cannot receive transfers yet, a fee above the amount.
   */
  private refuseCheckout(params: Record<string, unknown>): { status: number; body: unknown } | undefined {
    const intentData = params.payment_intent_data as Record<string, unknown> | undefined;
    const subscriptionData = params.subscription_data as Record<string, unknown> | undefined;
    if (intentData && params.mode !== "payment") {
      return invalidRequest("You can only use `payment_intent_data` in `payment` mode.", "payment_intent_data");
    }
    if (subscriptionData?.application_fee_percent !== undefined && params.mode !== "subscription") {
      return invalidRequest(
        "You can only use `subscription_data` in `subscription` mode.",
        "subscription_data[application_fee_percent]",
      );
    }
    const data = intentData ?? subscriptionData ?? {};
    const feeParam = intentData ? "application_fee_amount" : "application_fee_percent";
    const fee = data[feeParam];
    const destination = (data.transfer_data as { destination?: unknown } | undefined)?.destination;
    if (fee !== undefined && destination === undefined && data.on_behalf_of === undefined) {
      return invalidRequest(
        "Can only apply an application fee when the payment is a direct payment (using an OAuth key or " +
          "Stripe-Account header) or a destination payment (using `transfer_data[destination]`).",
        `${intentData ? "payment_intent_data" : "subscription_data"}[${feeParam}]`,
      );
    }
    if (destination !== undefined) {
      const account = this.accounts.get(String(destination));
      const param = `${intentData ? "payment_intent_data" : "subscription_data"}[transfer_data][destination]`;
      if (!account) return invalidRequest(`No such destination: '${destination}'`, param, "resource_missing");
      const capabilities = (account.capabilities ?? {}) as Record<string, string>;
      if (capabilities.transfers !== "active") {
        return invalidRequest(
          "Your destination account needs to have at least one of the following capabilities enabled: " +
            "transfers, crypto_transfers, legacy_payments",
          param,
          "insufficient_capabilities_for_transfer",
        );
      }
    }
    if (fee !== undefined) {
      const value = Number(fee);
      const total = this.inlinePrices(params).amount_total;
      const valid =
        feeParam === "application_fee_amount" ? Number.isInteger(value) && value >= 0 : value >= 0 && value <= 100;
      if (!valid) return invalidRequest(`Invalid ${feeParam}: ${fee}`, feeParam, "parameter_invalid_integer");
      if (feeParam === "application_fee_amount" && total !== undefined && value > total) {
        return invalidRequest("The application fee amount must be less than or equal to the amount.", feeParam);
      }
    }
    return undefined;
  }

  /**
   * Prices a session's `line_items[][price_data]` the way Stripe does: each becomes a price (listed
   * in `prices`, its id put in the line item) and the session gets `amount_total` and `currency`.
   * Nothing for sessions of configured price ids.
   */
  private inlinePrices(params: Record<string, unknown>): {
    amount_total?: number;
    amount_subtotal?: number;
    currency?: string;
  } {
    const items = (params.line_items ?? []) as Array<{
      price?: string;
      price_data?: Record<string, unknown>;
      quantity?: string;
    }>;
    if (!items.some((item) => item.price_data)) return {};
    let total = 0;
    let currency: string | undefined;
    for (const item of items) {
      const data = item.price_data;
      if (!data) continue;
      const quantity = Number(item.quantity ?? 1);
      total += Number(data.unit_amount) * quantity;
      currency = String(data.currency);
    }
    return { amount_total: total, amount_subtotal: total, currency };
  }

  /** Turns the inline prices of a session into price objects, once the session is accepted. */
  private createInlinePrices(session: Record<string, unknown>): void {
    const items = (session.line_items ?? []) as Array<{ price?: string; price_data?: Record<string, unknown> }>;
    for (const item of items) {
      const data = item.price_data;
      if (!data || item.price) continue;
      const product = (data.product_data ?? {}) as { name?: string };
      const price: StripeObject = {
        id: this.id("price"),
        object: "price",
        active: true,
        currency: String(data.currency),
        unit_amount: Number(data.unit_amount),
        product: { id: this.id("prod"), object: "product", name: product.name ?? null },
        recurring: data.recurring
          ? { interval: (data.recurring as { interval: string }).interval, interval_count: 1 }
          : null,
        type: data.recurring ? "recurring" : "one_time",
      };
      this.prices.set(price.id, price);
      item.price = price.id;
    }
  }

  /**
   * `GET /v1/invoice_payments`, filtered as Stripe filters it: by `invoice`, by
   * `payment[type]`/`payment[payment_intent]`, by `status`; newest first, `limit` (10) at most.
   */
  private listInvoicePayments(params: Record<string, unknown>): Record<string, unknown> {
    const payment = params.payment as { type?: string; payment_intent?: string } | undefined;
    const data = [...this.invoicePayments.values()]
      .filter((each) => params.invoice === undefined || each.invoice === params.invoice)
      .filter((each) => params.status === undefined || each.status === params.status)
      .filter((each) => {
        const paid = each.payment as { type: string; payment_intent?: string };
        if (payment?.type !== undefined && paid.type !== payment.type) return false;
        return payment?.payment_intent === undefined || paid.payment_intent === payment.payment_intent;
      })
      .reverse();
    const limit = Number(params.limit ?? 10);
    return {
      object: "list",
      data: data.slice(0, limit),
      has_more: data.length > limit,
      url: "/v1/invoice_payments",
    };
  }

  private createAccount(params: Record<string, unknown>): { status: number; body: unknown } {
    if (params.type === undefined && params.controller === undefined) {
      return invalidRequest("Missing required param: type.", "type", "parameter_missing");
    }
    if (params.type !== undefined && !["custom", "express", "standard"].includes(String(params.type))) {
      return invalidRequest("Invalid type: must be one of custom, express, or standard", "type", "parameter_invalid");
    }
    const requested = Object.entries((params.capabilities ?? {}) as Record<string, { requested?: string }>)
      .filter(([, capability]) => capability.requested === "true")
      .map(([name]) => name);
    const account: StripeObject = {
      id: this.id("acct"),
      object: "account",
      type: params.type ?? "none",
      business_type: params.business_type ?? null,
      business_profile: params.business_profile ?? {},
      capabilities: Object.fromEntries(requested.map((name) => [name, "inactive"])),
      charges_enabled: false,
      payouts_enabled: false,
      details_submitted: false,
      country: params.country ?? "US",
      default_currency: params.default_currency ?? "usd",
      email: params.email ?? null,
      metadata: params.metadata ?? {},
      requirements: requirements(["business_type", "external_account", "tos_acceptance.date"], "requirements.past_due"),
      controller: {
        type: "application",
        is_controller: true,
        requirement_collection: "stripe",
        stripe_dashboard: { type: params.type === "express" ? "express" : "full" },
        fees: { payer: "application" },
        losses: { payments: "application" },
      },
      tos_acceptance: { date: null },
      external_accounts: { object: "list", data: [], has_more: false, url: "/v1/accounts/external_accounts" },
      created: this.tick(),
    };
    this.accounts.set(account.id, account);
    return { status: 200, body: structuredClone(account) };
  }

  private createAccountLink(params: Record<string, unknown>): { status: number; body: unknown } {
    if (params.account === undefined)
      return invalidRequest("Missing required param: account.", "account", "parameter_missing");
    if (params.type === undefined) return invalidRequest("Missing required param: type.", "type", "parameter_missing");
    if (!["account_onboarding", "account_update"].includes(String(params.type))) {
      return invalidRequest(
        "Invalid type: must be one of account_onboarding or account_update",
        "type",
        "parameter_invalid",
      );
    }
    const account = String(params.account);
    if (!this.accounts.has(account))
      return invalidRequest(`No such account: '${account}'`, "account", "resource_missing");
    const created = this.tick();
    // A link works once and for a few minutes: the refresh_url is where an expired one sends the publisher.
    const link = {
      object: "account_link",
      created,
      expires_at: created + 300,
      url: `${this.url}/setup/e/${account}/${crypto.randomUUID().replaceAll("-", "")}`,
    };
    this.accountLinks.push({
      ...link,
      account,
      type: params.type,
      refresh_url: params.refresh_url,
      return_url: params.return_url,
    });
    return { status: 200, body: link };
  }

  /**
   * A refund of a charge, named by itself or by its payment intent; the whole rest by default. With
   * `refund_application_fee` the platform gives back its fee and with `reverse_transfer` the connected
   * account its share, both in proportion to the refund. Emits `charge.refunded`.
   */
  private createRefund(params: Record<string, unknown>): { status: number; body: unknown } {
    if (params.charge === undefined && params.payment_intent === undefined) {
      return invalidRequest("One of `charge` or `payment_intent` is required.", "charge", "parameter_missing");
    }
    const charge =
      params.charge !== undefined
        ? this.charges.get(String(params.charge))
        : [...this.charges.values()].find((each) => each.payment_intent === params.payment_intent);
    if (!charge) {
      const param = params.charge !== undefined ? "charge" : "payment_intent";
      return invalidRequest(`No such ${param}: '${params[param]}'`, param, "resource_missing");
    }
    const chargeAmount = Number(charge.amount);
    const left = chargeAmount - Number(charge.amount_refunded);
    if (left === 0)
      return invalidRequest(`Charge ${charge.id} has already been refunded.`, "charge", "charge_already_refunded");
    const amount = params.amount === undefined ? left : Number(params.amount);
    if (!Number.isInteger(amount) || amount <= 0) {
      return invalidRequest("Invalid positive integer", "amount", "parameter_invalid_integer");
    }
    if (amount > left) {
      return invalidRequest(
        `Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`,
        "amount",
        "amount_too_large",
      );
    }
    const refund: StripeObject = {
      id: this.id("re"),
      object: "refund",
      amount,
      charge: charge.id,
      currency: charge.currency,
      payment_intent: charge.payment_intent,
      reason: params.reason ?? null,
      metadata: params.metadata ?? {},
      status: "succeeded",
      balance_transaction: null,
      transfer_reversal: null,
      source_transfer_reversal: null,
      created: this.tick(),
    };
    charge.amount_refunded = Number(charge.amount_refunded) + amount;
    charge.refunded = charge.amount_refunded === chargeAmount;
    const share = (total: number) => Math.round((total * amount) / chargeAmount);
    const fee = charge.application_fee ? this.applicationFees.get(String(charge.application_fee)) : undefined;
    if (params.refund_application_fee === "true" && fee) {
      const back = Math.min(share(Number(fee.amount)), Number(fee.amount) - Number(fee.amount_refunded));
      fee.amount_refunded = Number(fee.amount_refunded) + back;
      fee.refunded = fee.amount_refunded === fee.amount;
    }
    const transfer = charge.transfer ? this.transfers.get(String(charge.transfer)) : undefined;
    if (params.reverse_transfer === "true" && transfer) {
      const back = Math.min(share(Number(transfer.amount)), Number(transfer.amount) - Number(transfer.amount_reversed));
      transfer.amount_reversed = Number(transfer.amount_reversed) + back;
      transfer.reversed = transfer.amount_reversed === transfer.amount;
      refund.transfer_reversal = this.id("trr");
    }
    this.refunds.set(refund.id, refund);
    this.emit("charge.refunded", charge);
    return { status: 200, body: structuredClone(refund) };
  }

  private applyUpdate(subscription: StripeObject, params: Record<string, unknown>): StripeObject {
    const changes: { cancel_at_period_end?: boolean; price?: string } = {};
    if (params.cancel_at_period_end !== undefined)
      changes.cancel_at_period_end = params.cancel_at_period_end === "true";
    const items = params.items as Array<{ price?: string }> | undefined;
    if (items?.[0]?.price) changes.price = items[0].price;
    return this.updateSubscription(subscription.id, changes);
  }
}

/** Signs a payload with the SDK's own test helper, as Stripe would sign a webhook. */
export function signWebhook(payload: string, secret: string, timestamp?: number): Promise<string> {
  return Stripe.webhooks.generateTestHeaderStringAsync({ payload, secret, timestamp });
}

function stripeError(status: number, type: string, message: string) {
  return Response.json(errorBody(type, message), { status });
}

function errorBody(type: string, message: string, code?: string, param?: string) {
  return { error: { type, message, ...(code ? { code } : {}), ...(param ? { param } : {}) } };
}

/** Stripe's 400 for a request it understood and refuses, naming the parameter at fault. */
function invalidRequest(message: string, param: string, code?: string) {
  return { status: 400, body: errorBody("invalid_request_error", message, code, param) };
}

/** An account's `requirements`: what Stripe still needs before it lets the account take charges. */
function requirements(due: string[], disabledReason: string | null) {
  return {
    alternatives: [],
    current_deadline: null,
    currently_due: due,
    disabled_reason: disabledReason,
    errors: [],
    eventually_due: due,
    past_due: due,
    pending_verification: [] as string[],
  };
}

/**
 * Decodes Stripe's form encoding (`a[b]=1`, `items[0][price]=x`) into nested objects and arrays.
 * Exported for the fake's own tests.
 */
export function decodeForm(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.split(/\[|\]\[|\]/).filter((part) => part !== "");
    let node: Record<string, unknown> | unknown[] = root;
    path.forEach((part, index) => {
      const last = index === path.length - 1;
      const container = node as Record<string, unknown>;
      if (last) {
        container[part] = value;
        return;
      }
      const nextIsIndex = /^\d+$/.test(path[index + 1] ?? "");
      container[part] ??= nextIsIndex ? [] : {};
      node = container[part] as Record<string, unknown> | unknown[];
    });
  }
  return root;
}
