CREATE SCHEMA "storage";
--> statement-breakpoint
CREATE TABLE "storage"."document_chunks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"object_id" uuid NOT NULL,
	"position" integer NOT NULL,
	"text" text NOT NULL,
	"embedding" real[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "storage"."objects" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"kind" text NOT NULL,
	"status" text NOT NULL,
	"name" text NOT NULL,
	"content_type" text NOT NULL,
	"size" bigint NOT NULL,
	"sha256" text NOT NULL,
	"mode" text NOT NULL,
	"upload_id" text,
	"part_size" integer NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"device_id" text,
	"backup_created_at" timestamp with time zone,
	"header_version" integer,
	"indexed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "storage"."usage" (
	"user_id" text PRIMARY KEY NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL,
	"objects" integer DEFAULT 0 NOT NULL,
	"tier" text DEFAULT 'free' NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "document_chunks_user_idx" ON "storage"."document_chunks" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "document_chunks_object_idx" ON "storage"."document_chunks" USING btree ("object_id");--> statement-breakpoint
CREATE INDEX "objects_user_list_idx" ON "storage"."objects" USING btree ("user_id","kind","status","created_at","id");--> statement-breakpoint
CREATE INDEX "objects_expiry_idx" ON "storage"."objects" USING btree ("expires_at") WHERE "storage"."objects"."status" = 'uploading';