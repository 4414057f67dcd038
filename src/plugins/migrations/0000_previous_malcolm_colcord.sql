CREATE SCHEMA "plugins";
--> statement-breakpoint
CREATE TABLE "plugins"."developers" (
	"user_id" text PRIMARY KEY NOT NULL,
	"display_name" text NOT NULL,
	"public_key" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."installs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"plugin_id" uuid NOT NULL,
	"version_id" uuid NOT NULL,
	"granted_device_tools" text[] NOT NULL,
	"granted_origins" text[] NOT NULL,
	"granted_data" text[] NOT NULL,
	"tier" text NOT NULL,
	"entitlement_id" text,
	"installed_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "plugins"."plugins" (
	"id" uuid PRIMARY KEY NOT NULL,
	"slug" text NOT NULL,
	"developer_id" text NOT NULL,
	"status" text DEFAULT 'draft' NOT NULL,
	"current_version_id" uuid,
	"name" text NOT NULL,
	"description" text NOT NULL,
	"icon" text NOT NULL,
	"categories" text[] NOT NULL,
	"publisher_name" text NOT NULL,
	"publisher_url" text,
	"homepage_url" text,
	"support_url" text,
	"install_count" integer DEFAULT 0 NOT NULL,
	"rating_sum" integer DEFAULT 0 NOT NULL,
	"rating_count" integer DEFAULT 0 NOT NULL,
	"rating_avg" double precision GENERATED ALWAYS AS (case when "rating_count" = 0 then 0 else "rating_sum"::double precision / "rating_count" end) STORED NOT NULL,
	"search" "tsvector" GENERATED ALWAYS AS (setweight(to_tsvector('simple', "name"), 'A') || setweight(to_tsvector('simple', "description"), 'B')) STORED NOT NULL,
	"suspended_at" timestamp (3) with time zone,
	"suspended_reason" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "plugins_status_check" CHECK ("plugins"."plugins"."status" in ('draft', 'in_review', 'published')),
	CONSTRAINT "plugins_counters_check" CHECK ("plugins"."plugins"."install_count" >= 0 and "plugins"."plugins"."rating_count" >= 0)
);
--> statement-breakpoint
CREATE TABLE "plugins"."review_reports" (
	"review_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"reason" text NOT NULL,
	"note" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "review_reports_review_id_user_id_pk" PRIMARY KEY("review_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "plugins"."reviews" (
	"id" uuid PRIMARY KEY NOT NULL,
	"plugin_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"rating" smallint NOT NULL,
	"body" text NOT NULL,
	"report_count" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "reviews_rating_check" CHECK ("plugins"."reviews"."rating" between 1 and 5)
);
--> statement-breakpoint
CREATE TABLE "plugins"."versions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"plugin_id" uuid NOT NULL,
	"version" text NOT NULL,
	"status" text DEFAULT 'draft' NOT NULL,
	"manifest" jsonb NOT NULL,
	"signature" text NOT NULL,
	"signing_key" text NOT NULL,
	"manifest_sha256" text NOT NULL,
	"review_note" text,
	"reviewed_by" text,
	"submitted_at" timestamp (3) with time zone,
	"reviewed_at" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "versions_status_check" CHECK ("plugins"."versions"."status" in ('draft', 'in_review', 'published', 'rejected'))
);
--> statement-breakpoint
ALTER TABLE "plugins"."installs" ADD CONSTRAINT "installs_plugin_id_plugins_id_fk" FOREIGN KEY ("plugin_id") REFERENCES "plugins"."plugins"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."installs" ADD CONSTRAINT "installs_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "plugins"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."plugins" ADD CONSTRAINT "plugins_developer_id_developers_user_id_fk" FOREIGN KEY ("developer_id") REFERENCES "plugins"."developers"("user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."review_reports" ADD CONSTRAINT "review_reports_review_id_reviews_id_fk" FOREIGN KEY ("review_id") REFERENCES "plugins"."reviews"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."reviews" ADD CONSTRAINT "reviews_plugin_id_plugins_id_fk" FOREIGN KEY ("plugin_id") REFERENCES "plugins"."plugins"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "plugins"."versions" ADD CONSTRAINT "versions_plugin_id_plugins_id_fk" FOREIGN KEY ("plugin_id") REFERENCES "plugins"."plugins"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "installs_user_plugin_idx" ON "plugins"."installs" USING btree ("user_id","plugin_id");--> statement-breakpoint
CREATE INDEX "installs_plugin_version_idx" ON "plugins"."installs" USING btree ("plugin_id","version_id");--> statement-breakpoint
CREATE UNIQUE INDEX "plugins_slug_idx" ON "plugins"."plugins" USING btree ("slug");--> statement-breakpoint
CREATE INDEX "plugins_developer_idx" ON "plugins"."plugins" USING btree ("developer_id");--> statement-breakpoint
CREATE INDEX "plugins_search_idx" ON "plugins"."plugins" USING gin ("search");--> statement-breakpoint
CREATE INDEX "plugins_categories_idx" ON "plugins"."plugins" USING gin ("categories");--> statement-breakpoint
CREATE INDEX "plugins_by_installs_idx" ON "plugins"."plugins" USING btree ("install_count" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "plugins"."plugins"."status" = 'published' and "plugins"."plugins"."suspended_at" is null;--> statement-breakpoint
CREATE INDEX "plugins_by_rating_idx" ON "plugins"."plugins" USING btree ("rating_avg" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "plugins"."plugins"."status" = 'published' and "plugins"."plugins"."suspended_at" is null;--> statement-breakpoint
CREATE INDEX "review_reports_user_idx" ON "plugins"."review_reports" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "reviews_plugin_user_idx" ON "plugins"."reviews" USING btree ("plugin_id","user_id");--> statement-breakpoint
CREATE INDEX "reviews_plugin_list_idx" ON "plugins"."reviews" USING btree ("plugin_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "reviews_user_idx" ON "plugins"."reviews" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "reviews_reported_idx" ON "plugins"."reviews" USING btree ("report_count" DESC NULLS LAST,"id") WHERE "plugins"."reviews"."report_count" > 0;--> statement-breakpoint
CREATE UNIQUE INDEX "versions_plugin_version_idx" ON "plugins"."versions" USING btree ("plugin_id","version");--> statement-breakpoint
CREATE INDEX "versions_review_queue_idx" ON "plugins"."versions" USING btree ("submitted_at","id") WHERE "plugins"."versions"."status" = 'in_review';