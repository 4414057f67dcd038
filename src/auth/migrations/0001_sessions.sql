CREATE TABLE "auth"."sessions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" uuid NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "auth"."sessions" ADD CONSTRAINT "sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "auth"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "auth"."sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sessions_revoked_at_idx" ON "auth"."sessions" USING btree ("revoked_at");--> statement-breakpoint
-- Every existing refresh-token family becomes a session; it is ended when none of its tokens is live.
INSERT INTO "auth"."sessions" ("id", "user_id", "revoked_at", "revoked_reason", "created_at")
SELECT "family_id",
       (array_agg("user_id"))[1],
       CASE WHEN bool_and("revoked_at" IS NOT NULL) THEN max("revoked_at") END,
       CASE WHEN bool_and("revoked_at" IS NOT NULL) THEN max("revoked_reason") END,
       min("created_at")
FROM "auth"."refresh_tokens"
GROUP BY "family_id";--> statement-breakpoint
ALTER TABLE "auth"."refresh_tokens" ADD CONSTRAINT "refresh_tokens_family_id_sessions_id_fk" FOREIGN KEY ("family_id") REFERENCES "auth"."sessions"("id") ON DELETE cascade ON UPDATE no action;