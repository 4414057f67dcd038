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

/**
 * A small in-memory Stripe API on a free port: customers (create, retrieve, delete), Checkout Sessions
 * (create, retrieve), subscriptions (retrieve/update/cancel), invoices (list by customer) and billing portal sessions, speaking Stripe's form-encoded requests and
 * JSON error shape, honouring Idempotency-Key like Stripe does (same key and body: the stored
 * response; same key, other body: 400). The real SDK talks to it through host/port/protocol.
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

  /** What Stripe does when the customer pays: an active subscription for the session's price. */
  completeCheckout(sessionId: string): { session: StripeObject; subscription: StripeObject } {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    const lineItems = session.line_items as Array<{ price: string; quantity?: string }>;
    const data = (session.subscription_data ?? {}) as { metadata?: Record<string, string> };
    const subscription = this.createSubscription({
      customer: String(session.customer),
      price: lineItems[0]?.price ?? "price_unknown",
      metadata: data.metadata ?? {},
    });
    const customer = this.customers.get(String(session.customer));
    Object.assign(session, {
      status: "complete",
      payment_status: "paid",
      subscription: subscription.id,
      // What Stripe adds once the customer has paid: their address and the amount, private to them.
      customer_details: { email: customer?.email ?? null, name: null },
      amount_total: 1900,
      currency: "eur",
    });
    const invoice = { ...this.invoice(subscription.id, "paid"), amount_due: 1900, amount_paid: 1900, currency: "eur" };
    this.invoices.set(invoice.id, { ...invoice, number: `FAKE-${this.invoices.size + 1}`, created: this.tick() });
    return { session, subscription };
  }

  /** Where Stripe sends the browser after payment: `success_url` with the session id filled in. */
  successRedirect(sessionId: string): string {
    const session = this.sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId}`);
    return String(session.success_url).replaceAll("{CHECKOUT_SESSION_ID}", sessionId);
  }

  createSubscription(input: { customer: string; price: string; metadata?: Record<string, string> }): StripeObject {
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
  event(type: string, object: Record<string, unknown>, options: { id?: string; created?: number } = {}): string {
    return JSON.stringify(
      {
        id: options.id ?? this.id("evt"),
        object: "event",
        api_version: Stripe.API_VERSION,
        created: options.created ?? this.tick(),
        data: { object: structuredClone(object) },
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        type,
      },
      null,
      2,
    );
  }

  /** An invoice snapshot for `invoice.*` events, linked to its subscription the current API's way. */
  invoice(subscriptionId: string, status: "paid" | "open"): StripeObject {
    const subscription = this.subscriptions.get(subscriptionId);
    return {
      id: this.id("in"),
      object: "invoice",
      customer: subscription?.customer ?? null,
      status,
      parent: {
        type: "subscription_details",
        quote_details: null,
        subscription_details: { subscription: subscriptionId, metadata: subscription?.metadata ?? {} },
      },
    };
  }

  private item(subscriptionId: string, price: string, now: number): StripeObject {
    return {
      id: this.id("si"),
      object: "subscription_item",
      subscription: subscriptionId,
      price: { id: price, object: "price" },
      quantity: 1,
      current_period_start: now,
      current_period_end: now + 30 * 24 * 3600,
    };
  }

  private tick(): number {
    this.clock += 1;
    return this.clock;
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
      if (!params.customer || !this.customers.has(String(params.customer))) {
        return missing("customer", String(params.customer));
      }
      const id = this.id("cs_test");
      const session = {
        ...params,
        id,
        object: "checkout.session",
        status: "open",
        payment_status: "unpaid",
        subscription: null,
        url: `${this.url}/c/pay/${id}`,
        expires_at: Math.floor(Date.now() / 1000) + 24 * 3600,
      };
      this.sessions.set(id, session);
      return ok(session);
    }
    if (first === "checkout" && second === "sessions" && method === "GET" && third) {
      const session = this.sessions.get(third);
      return session ? ok(session) : missing("checkout.session", third);
    }
    if (first === "subscriptions" && second) {
      const subscription = this.subscriptions.get(second);
      if (!subscription) return missing("subscription", second);
      if (method === "GET") return ok(subscription);
      if (method === "POST") return ok(this.applyUpdate(subscription, params));
      if (method === "DELETE") return ok(this.updateSubscription(second, { status: "canceled" }));
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

function errorBody(type: string, message: string, code?: string) {
  return { error: { type, message, ...(code ? { code } : {}) } };
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
