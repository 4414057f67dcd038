ALTER TABLE "agent"."agent_run_logs" DROP CONSTRAINT "agent_run_logs_status_check";--> statement-breakpoint
ALTER TABLE "agent"."agent_configs" ADD COLUMN "device_id" text;--> statement-breakpoint
ALTER TABLE "agent"."agent_run_logs" ADD COLUMN "device_id" text;--> statement-breakpoint
CREATE INDEX "agent_run_logs_active_idx" ON "agent"."agent_run_logs" USING btree ("created_at") WHERE "agent"."agent_run_logs"."status" in ('queued', 'running', 'paused');--> statement-breakpoint
ALTER TABLE "agent"."agent_run_logs" ADD CONSTRAINT "agent_run_logs_status_check" CHECK ("agent"."agent_run_logs"."status" in ('queued', 'running', 'paused', 'succeeded', 'completed_with_errors', 'failed', 'cancelled'));