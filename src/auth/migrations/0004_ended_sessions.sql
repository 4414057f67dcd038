CREATE TABLE "auth"."ended_sessions" (
	"session_id" uuid PRIMARY KEY NOT NULL,
	"until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "ended_sessions_until_idx" ON "auth"."ended_sessions" USING btree ("until");