DROP INDEX "auth"."mail_outbox_due_idx";--> statement-breakpoint
ALTER TABLE "auth"."mail_outbox" ADD COLUMN "failed_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "mail_outbox_due_idx" ON "auth"."mail_outbox" USING btree ("next_attempt_at") WHERE "auth"."mail_outbox"."sent_at" is null and "auth"."mail_outbox"."failed_at" is null;