CREATE TABLE "plugins"."checkout_grants" (
	"session_id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"plugin_id" uuid NOT NULL,
	"granted_device_tools" text[] NOT NULL,
	"granted_origins" text[] NOT NULL,
	"granted_data" text[] NOT NULL,
	"tier" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."processed_payment_events" (
	"event_id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"processed_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."purchases" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" text,
	"plugin_id" uuid NOT NULL,
	"version_id" uuid NOT NULL,
	"version" text NOT NULL,
	"model" text NOT NULL,
	"amount" integer NOT NULL,
	"currency" text NOT NULL,
	"platform_fee" integer NOT NULL,
	"amount_refunded" integer DEFAULT 0 NOT NULL,
	"checkout_session_id" text NOT NULL,
	"payment_intent_id" text,
	"subscription_id" text,
	"customer_id" text,
	"status" text DEFAULT 'active' NOT NULL,
	"end_reason" text,
	"cancel_at_period_end" boolean DEFAULT false NOT NULL,
	"last_occurred_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "purchases_status_check" CHECK ("plugins"."purchases"."status" in ('active', 'refunded', 'ended')),
	CONSTRAINT "purchases_model_check" CHECK ("plugins"."purchases"."model" in ('one_off', 'monthly')),
	CONSTRAINT "purchases_end_reason_check" CHECK ("plugins"."purchases"."end_reason" is null or "plugins"."purchases"."end_reason" in ('canceled', 'lapsed'))
);
--> statement-breakpoint
ALTER TABLE "plugins"."installs" ALTER COLUMN "entitlement_id" SET DATA TYPE uuid USING "entitlement_id"::uuid;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD COLUMN "stripe_account_id" text;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD COLUMN "charges_enabled" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD COLUMN "payouts_enabled" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD COLUMN "details_submitted" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD COLUMN "stripe_account_updated_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "plugins"."checkout_grants" ADD CONSTRAINT "checkout_grants_plugin_id_plugins_id_fk" FOREIGN KEY ("plugin_id") REFERENCES "plugins"."plugins"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."purchases" ADD CONSTRAINT "purchases_plugin_id_plugins_id_fk" FOREIGN KEY ("plugin_id") REFERENCES "plugins"."plugins"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."purchases" ADD CONSTRAINT "purchases_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "plugins"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "checkout_grants_user_idx" ON "plugins"."checkout_grants" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "purchases_checkout_session_idx" ON "plugins"."purchases" USING btree ("checkout_session_id");--> statement-breakpoint
CREATE UNIQUE INDEX "purchases_payment_intent_idx" ON "plugins"."purchases" USING btree ("payment_intent_id");--> statement-breakpoint
CREATE UNIQUE INDEX "purchases_subscription_idx" ON "plugins"."purchases" USING btree ("subscription_id");--> statement-breakpoint
CREATE INDEX "purchases_user_plugin_idx" ON "plugins"."purchases" USING btree ("user_id","plugin_id");--> statement-breakpoint
CREATE INDEX "purchases_plugin_idx" ON "plugins"."purchases" USING btree ("plugin_id");--> statement-breakpoint
ALTER TABLE "plugins"."installs" ADD CONSTRAINT "installs_entitlement_id_purchases_id_fk" FOREIGN KEY ("entitlement_id") REFERENCES "plugins"."purchases"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."developers" ADD CONSTRAINT "developers_stripe_account_id_unique" UNIQUE("stripe_account_id");