CREATE TABLE "plugins"."erased_users" (
	"user_id_sha256" text PRIMARY KEY NOT NULL,
	"erased_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."payment_refunds" (
	"payment_intent_id" text PRIMARY KEY NOT NULL,
	"amount_refunded" integer DEFAULT 0 NOT NULL,
	"fully_refunded" boolean DEFAULT false NOT NULL,
	"invoice_id" text,
	"occurred_at" timestamp (3) with time zone NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "payment_refunds_invoice_idx" ON "plugins"."payment_refunds" USING btree ("invoice_id") WHERE "plugins"."payment_refunds"."invoice_id" is not null;