import { and, eq, isNull, lte, or, sql } from "drizzle-orm";
import type { AuthUser } from "../shared/auth/verifier";
import { conflict, forbidden, notFound } from "../shared/errors";
import type { VerbArgs } from "../shared/verb";
import type { PluginsContext } from "./context";
import { requireDeveloper } from "./developers";
import type { OnboardingLink, OnboardingLinkInput, PaymentAccount, PaymentAccountInput } from "./model";
import {
  createOnboardingLink,
  createPublisherAccount,
  type PaymentsDeps,
  type PublisherAccountStatus,
  readPublisherAccount,
  requirePluginStripe,
} from "./payments";
import { allowedRedirect } from "./redirects";
import { developers } from "./tables";

type DeveloperRow = typeof developers.$inferSelect;

export const paymentsDeps = (ctx: PluginsContext): PaymentsDeps => ({ config: ctx.payments, logger: ctx.logger });

const accountView = (row: DeveloperRow, live: PublisherAccountStatus): PaymentAccount => ({
  account_id: live.accountId,
  charges_enabled: live.chargesEnabled,
  payouts_enabled: live.payoutsEnabled,
  details_submitted: live.detailsSubmitted,
  currently_due: live.currentlyDue,
  disabled_reason: live.disabledReason,
  updated_at: row.stripeAccountUpdatedAt?.toISOString() ?? null,
});

/** What Stripe said of the account at `at`, stored unless a newer `account.updated` is stored already. */
async function storeStatus(ctx: PluginsContext, user: AuthUser, status: PublisherAccountStatus, at: Date) {
  const [row] = await ctx.db
    .update(developers)
    .set({
      chargesEnabled: status.chargesEnabled,
      payoutsEnabled: status.payoutsEnabled,
      detailsSubmitted: status.detailsSubmitted,
      stripeAccountUpdatedAt: at,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        eq(developers.userId, user.userId),
        eq(developers.stripeAccountId, status.accountId),
        or(isNull(developers.stripeAccountUpdatedAt), lte(developers.stripeAccountUpdatedAt, at)),
      ),
    )
    .returning();
  return row;
}

/**
 * Makes the developer's Stripe Express account, once: the developer row is locked while Stripe makes
 * it, so a second request waits and then finds it (409 `payment_account_exists`); Stripe's
 * idempotency key returns the same account if a crash lost the commit. 403 `developer_required`
 * for a user who is not a developer; 503 while payments are not configured.
 */
export async function createPaymentAccount({
  ctx,
  user,
  input,
}: VerbArgs<PluginsContext, PaymentAccountInput>): Promise<PaymentAccount> {
  requirePluginStripe(ctx.payments);
  const { row, status } = await ctx.db.transaction(async (tx) => {
    const [developer] = await tx.select().from(developers).where(eq(developers.userId, user.userId)).for("update");
    if (!developer) {
      throw forbidden("developer_required", "register as a developer first (POST /api/v1/plugins/developers/me)");
    }
    if (developer.stripeAccountId) {
      throw conflict(
        "payment_account_exists",
        "you have a payment account already; continue its onboarding (POST /api/v1/plugins/developers/me/payment-account/onboarding-link)",
      );
    }
    const created = await createPublisherAccount(paymentsDeps(ctx), {
      publisherId: user.userId,
      ...(input.country ? { country: input.country } : {}),
    });
    const [updated] = await tx
      .update(developers)
      .set({
        stripeAccountId: created.accountId,
        chargesEnabled: created.chargesEnabled,
        payoutsEnabled: created.payoutsEnabled,
        detailsSubmitted: created.detailsSubmitted,
        stripeAccountUpdatedAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(eq(developers.userId, user.userId))
      .returning();
    return { row: updated as DeveloperRow, status: created };
  });
  ctx.logger.info({ user_id: user.userId, account: status.accountId }, "publisher payment account created");
  return accountView(row, status);
}

/** The developer's account row with its Stripe account; 404 when they have none yet. */
async function ownAccount(ctx: PluginsContext, user: AuthUser): Promise<DeveloperRow & { stripeAccountId: string }> {
  const developer = await requireDeveloper(ctx, user);
  if (!developer.stripeAccountId) throw notFound("payment account (create it: POST /developers/me/payment-account)");
  return developer as DeveloperRow & { stripeAccountId: string };
}

/**
 * The account as Stripe has it now (what it still asks of the publisher, whether it can be paid),
 * stored as the webhook would store it, so a lost `account.updated` is made up for here.
 */
export async function getPaymentAccount({ ctx, user }: VerbArgs<PluginsContext>): Promise<PaymentAccount> {
  const developer = await ownAccount(ctx, user);
  const readAt = new Date();
  const status = await readPublisherAccount(paymentsDeps(ctx), developer.stripeAccountId);
  const stored = await storeStatus(ctx, user, status, readAt);
  return accountView(stored ?? developer, status);
}

/**
 * A link to Stripe's onboarding of the developer's account, for their browser: `return_url` is
 * where Stripe sends them when done, `refresh_url` where an expired or used link does (a page that
 * asks for a new one). Both must be of an allowed origin (422 otherwise), as Checkout's.
 */
export async function createOnboarding({
  ctx,
  user,
  input,
}: VerbArgs<PluginsContext, OnboardingLinkInput>): Promise<OnboardingLink> {
  const refreshUrl = allowedRedirect(ctx.config.redirectOrigins, "refresh_url", input.refresh_url);
  const returnUrl = allowedRedirect(ctx.config.redirectOrigins, "return_url", input.return_url);
  const developer = await ownAccount(ctx, user);
  const link = await createOnboardingLink(paymentsDeps(ctx), {
    accountId: developer.stripeAccountId,
    refreshUrl,
    returnUrl,
  });
  return { url: link.url, expires_at: link.expiresAt.toISOString() };
}
