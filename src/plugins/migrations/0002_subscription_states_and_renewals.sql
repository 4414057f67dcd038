CREATE TABLE "plugins"."subscription_renewals" (
	"invoice_id" text PRIMARY KEY NOT NULL,
	"purchase_id" uuid NOT NULL,
	"amount" integer NOT NULL,
	"currency" text NOT NULL,
	"platform_fee" integer NOT NULL,
	"paid_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."subscription_states" (
	"subscription_id" text PRIMARY KEY NOT NULL,
	"state" text NOT NULL,
	"occurred_at" timestamp (3) with time zone NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "subscription_states_state_check" CHECK ("plugins"."subscription_states"."state" in ('active', 'lapsed', 'canceled'))
);
--> statement-breakpoint
ALTER TABLE "plugins"."subscription_renewals" ADD CONSTRAINT "subscription_renewals_purchase_id_purchases_id_fk" FOREIGN KEY ("purchase_id") REFERENCES "plugins"."purchases"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "subscription_renewals_purchase_idx" ON "plugins"."subscription_renewals" USING btree ("purchase_id");