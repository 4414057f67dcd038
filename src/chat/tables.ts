import { sql } from "drizzle-orm";
import {
  bigint,
  date,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  real,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

export const chat = pgSchema("chat");

export const conversations = chat.table(
  "conversations",
  {
    id: uuid("id").primaryKey(),
    userId: text("user_id").notNull(),
    /** "home" or "floating": decides the system prompt and output format of every turn. */
    surface: text("surface").notNull(),
    title: text("title").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("conversations_user_updated").on(table.userId, table.updatedAt.desc(), table.id.desc())],
);

export const messages = chat.table(
  "messages",
  {
    id: uuid("id").primaryKey(),
    conversationId: uuid("conversation_id")
      .notNull()
      .references(() => conversations.id, { onDelete: "cascade" }),
    /** Ordering inside the conversation; timestamps can tie. */
    seq: bigint("seq", { mode: "number" }).generatedAlwaysAsIdentity(),
    role: text("role").notNull(),
    /** AI SDK UI message parts (text, tool calls with their input and output or error). */
    parts: jsonb("parts").notNull(),
    /** completed | cancelled | error */
    status: text("status").notNull().default("completed"),
    /** Screen context the device sent with a floating-chat message. */
    context: jsonb("context"),
    inputTokens: integer("input_tokens"),
    outputTokens: integer("output_tokens"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("messages_conversation_seq").on(table.conversationId, table.seq)],
);

/** Long-term memory when no Qdrant is configured; vectors are compared in process per user. */
export const memories = chat.table(
  "memories",
  {
    id: uuid("id").primaryKey(),
    userId: text("user_id").notNull(),
    text: text("text").notNull(),
    embedding: real("embedding").array().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("memories_user_created").on(table.userId, table.createdAt.desc(), table.id.desc())],
);

/** Token and message usage per user and UTC day. */
export const usage = chat.table(
  "usage",
  {
    userId: text("user_id").notNull(),
    day: date("day", { mode: "string" }).notNull(),
    messages: integer("messages").notNull().default(0),
    inputTokens: bigint("input_tokens", { mode: "number" }).notNull().default(sql`0`),
    outputTokens: bigint("output_tokens", { mode: "number" }).notNull().default(sql`0`),
  },
  (table) => [primaryKey({ columns: [table.userId, table.day] })],
);
