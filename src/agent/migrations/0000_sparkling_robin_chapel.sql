CREATE SCHEMA "agent";
--> statement-breakpoint
CREATE TABLE "agent"."agent_configs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"type" text NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"config" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_configs_kind_check" CHECK ("agent"."agent_configs"."kind" in ('local', 'cloud'))
);
--> statement-breakpoint
CREATE TABLE "agent"."agent_journeys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"type" text NOT NULL,
	"status" text DEFAULT 'collecting' NOT NULL,
	"draft" jsonb NOT NULL,
	"messages" jsonb NOT NULL,
	"config_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "agent"."agent_run_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"run_id" uuid NOT NULL,
	"level" text NOT NULL,
	"message" text NOT NULL,
	"item" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "agent"."agent_run_items" (
	"run_id" uuid NOT NULL,
	"item" text NOT NULL,
	"size" integer DEFAULT 0 NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"category" text,
	"created" jsonb,
	"error" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_run_items_run_id_item_pk" PRIMARY KEY("run_id","item")
);
--> statement-breakpoint
CREATE TABLE "agent"."agent_run_logs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"config_id" uuid,
	"type" text NOT NULL,
	"config" jsonb NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"error_code" text,
	"error_message" text,
	"listed" boolean DEFAULT false NOT NULL,
	"items_total" integer DEFAULT 0 NOT NULL,
	"items_done" integer DEFAULT 0 NOT NULL,
	"items_failed" integer DEFAULT 0 NOT NULL,
	"items_skipped" integer DEFAULT 0 NOT NULL,
	"tasks_created" integer DEFAULT 0 NOT NULL,
	"projects_created" integer DEFAULT 0 NOT NULL,
	"notes_created" integer DEFAULT 0 NOT NULL,
	"events_created" integer DEFAULT 0 NOT NULL,
	"starts" integer DEFAULT 0 NOT NULL,
	"instance_id" text,
	"cancel_requested_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_run_logs_status_check" CHECK ("agent"."agent_run_logs"."status" in ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled'))
);
--> statement-breakpoint
ALTER TABLE "agent"."agent_run_events" ADD CONSTRAINT "agent_run_events_run_id_agent_run_logs_id_fk" FOREIGN KEY ("run_id") REFERENCES "agent"."agent_run_logs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent"."agent_run_items" ADD CONSTRAINT "agent_run_items_run_id_agent_run_logs_id_fk" FOREIGN KEY ("run_id") REFERENCES "agent"."agent_run_logs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent"."agent_run_logs" ADD CONSTRAINT "agent_run_logs_config_id_agent_configs_id_fk" FOREIGN KEY ("config_id") REFERENCES "agent"."agent_configs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_configs_user_idx" ON "agent"."agent_configs" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "agent_journeys_user_idx" ON "agent"."agent_journeys" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "agent_run_events_run_idx" ON "agent"."agent_run_events" USING btree ("run_id","id");--> statement-breakpoint
CREATE INDEX "agent_run_items_status_idx" ON "agent"."agent_run_items" USING btree ("run_id","status");--> statement-breakpoint
CREATE INDEX "agent_run_logs_user_idx" ON "agent"."agent_run_logs" USING btree ("user_id","created_at");