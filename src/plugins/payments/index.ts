// Paid plugins' side of Stripe: publishers' Connect accounts, purchases through Checkout, and the
// webhook's domain outcomes for the plugins service to apply.
export * from "./config";
export * from "./metadata";
export * from "./stripe-connect";
export * from "./webhook";
