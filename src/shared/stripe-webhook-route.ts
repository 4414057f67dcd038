import { Elysia } from "elysia";
import type { z } from "zod";
import { responses } from "./contract";

/** What a Stripe webhook handler gets: the exact bytes Stripe sent and its signature header. */
export interface SignedDelivery {
  payload: Uint8Array;
  signature: string | null;
}

/**
 * A Stripe webhook endpoint (billing's and plugin payments'), registered on the service's routes
 * before `protectedRoutes`: public, since Stripe calls it, and so outside the sanitizer; the body
 * stays unparsed because the signature covers the exact bytes sent. 413 past MAX_BODY_BYTES; 503
 * while the endpoint is not configured or the database is away.
 */
export function stripeWebhookRoute(options: {
  path: string;
  result: z.ZodType;
  summary: string;
  description: string;
  receive: (delivery: SignedDelivery) => Promise<unknown>;
}) {
  return new Elysia({ name: `stripe-webhook:${options.path}` }).post(
    options.path,
    async ({ request }) =>
      options.receive({
        payload: new Uint8Array(await request.arrayBuffer()),
        signature: request.headers.get("stripe-signature"),
      }),
    {
      parse: "none",
      response: responses({ 200: options.result }, 400, 413, 503),
      detail: {
        summary: options.summary,
        description: options.description,
        requestBody: {
          required: true,
          content: { "application/json": { schema: { type: "object", description: "A Stripe event" } } },
        },
      },
    },
  );
}
