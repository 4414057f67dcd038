CREATE TABLE "plugins"."erased_plugins" (
	"plugin_id" uuid PRIMARY KEY NOT NULL,
	"erased_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "plugins"."purchases" ADD COLUMN "first_invoice_id" text;