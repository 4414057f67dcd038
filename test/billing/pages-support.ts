// Shared by the page tests: a checkout paid in the fake Stripe, with or without the webhook that
// tells billing, and the path Stripe would send the payer's browser back to.
import type { PaidTier } from "../../src/billing/config";
import { type BillingHarness, newUserId } from "./harness";

export interface PaidCheckout {
  userId: string;
  sessionId: string;
  customerId: string;
  /** The payer's address at Stripe: the pages must never show it. */
  email: string;
  /** Where Stripe sends the browser: `success_url` with the session id, as a path on the service. */
  successPath: string;
  /** Delivers `checkout.session.completed`, signed, as Stripe would. */
  deliverWebhook(): Promise<void>;
}

/** A checkout of `tier` paid in Stripe; billing has not heard of it until `deliverWebhook`. */
export async function payCheckout(h: BillingHarness, tier: PaidTier): Promise<PaidCheckout> {
  const userId = newUserId();
  const email = `payer-${crypto.randomUUID()}@example.com`;
  const token = await h.ctx.token(userId);
  const checkout = await h.call("POST", "/checkout", { token, body: { tier } });
  if (checkout.status !== 200) throw new Error(`checkout failed: ${JSON.stringify(checkout.body)}`);
  const sessionId = String(checkout.body.url).split("/").pop() ?? "";
  const customerId = String(h.fake.sessions.get(sessionId)?.customer);
  const customer = h.fake.customers.get(customerId);
  if (customer) customer.email = email;
  const { session } = h.fake.completeCheckout(sessionId);
  const redirect = new URL(h.fake.successRedirect(sessionId));
  return {
    userId,
    sessionId,
    customerId,
    email,
    successPath: `${redirect.pathname}${redirect.search}`,
    async deliverWebhook() {
      const delivered = await h.webhook(h.fake.event("checkout.session.completed", session));
      if (delivered.status !== 200) throw new Error(`webhook failed: ${JSON.stringify(delivered.body)}`);
    },
  };
}

/** What a page must never contain about a paid checkout: who paid, with what, for how much. */
export const privateDetails = (paid: PaidCheckout) => [paid.email, paid.userId, paid.customerId, "19.00", "1900", "€"];
