// What the services' logger writes, captured line by line from createLogger itself. Failures are
// real: drizzle inserts into a fresh PostgreSQL database that break a unique and a check
// constraint, with a real argon2id hash, an e-mail and a wrapped key as bound parameters, logged
// directly and through the HTTP plugin's 5xx renderer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { pgTable, text, uuid } from "drizzle-orm/pg-core";
import { Elysia } from "elysia";
import postgres from "postgres";
import { openDatabase } from "../../src/shared/db";
import { httpPlugin } from "../../src/shared/http";
import { createLogger } from "../../src/shared/logger";
import { Metrics } from "../../src/shared/metrics";
import { createTestDatabase, randomSuffix } from "../../src/shared/testing";

const accounts = pgTable("accounts", {
  id: uuid("id").primaryKey().defaultRandom(),
  email: text("email").notNull(),
  passwordHash: text("password_hash").notNull(),
  wrappedKey: text("wrapped_key").notNull(),
});

const base64 = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64");

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let handle: ReturnType<typeof openDatabase>;
let hash: string;
let email: string;
beforeAll(async () => {
  database = await createTestDatabase();
  handle = openDatabase({ url: database.url, maxConnections: 2 });
  await handle.db.execute(sql`
    create table accounts (
      id uuid primary key default gen_random_uuid(),
      email text not null constraint accounts_email_unique unique,
      password_hash text not null,
      wrapped_key text not null constraint accounts_wrapped_key_length check (length(wrapped_key) <= 64)
    )`);
  hash = await Bun.password.hash(`pw-${randomSuffix()}`, { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 });
  email = `ada.${randomSuffix()}@example.com`;
  await handle.db.insert(accounts).values({ email, passwordHash: hash, wrappedKey: base64(48) });
});
afterAll(async () => {
  await handle.close();
  await database.drop();
});

function capture() {
  const lines: string[] = [];
  const logger = createLogger({ service: "test", destination: { write: (line: string) => void lines.push(line) } });
  return { logger, lines, parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

/** The failed insert's error, checked to carry the values, so the assertions below mean something. */
async function failedInsert(values: typeof accounts.$inferInsert): Promise<DrizzleQueryError> {
  const error = await handle.db
    .insert(accounts)
    .values(values)
    .then(() => undefined)
    .catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(DrizzleQueryError);
  expect(String(error)).toContain(values.email);
  expect(String(error)).toContain(values.passwordHash);
  return error as DrizzleQueryError;
}

const expectNone = (lines: string[], values: string[]) => {
  for (const line of lines)
    for (const value of values) expect({ line, leaked: line.includes(value) }).toEqual({ line, leaked: false });
};

describe("errors of failed queries", () => {
  test("a unique violation keeps code, table and constraint, and none of the bound values", async () => {
    const wrappedKey = base64(48);
    const error = await failedInsert({ email, passwordHash: hash, wrappedKey });
    expect((error.cause as { detail?: string }).detail).toContain(email);
    const { logger, lines, parsed } = capture();
    logger.error({ err: error, request_id: "r1" }, "request failed");
    logger.error(error);
    logger.warn({ err: String(error) }, "insert failed");
    logger.warn({ err: error.message, nested: { failure: error } }, "insert failed");

    expect(lines).toHaveLength(4);
    expectNone(lines, [email, hash, hash.split("$").at(-1) as string, wrappedKey, "Key (email)"]);
    const [structured, bare, asString] = parsed();
    const expected = {
      type: "DrizzleQueryError",
      message: expect.stringMatching(/^Failed query: insert into "accounts" .*\$1/),
      stack: expect.stringContaining("    at "),
      cause: {
        type: "PostgresError",
        message: 'duplicate key value violates unique constraint "accounts_email_unique"',
        code: "23505",
        severity: "ERROR",
        routine: expect.any(String),
        schema_name: "public",
        table_name: "accounts",
        constraint_name: "accounts_email_unique",
        stack: expect.any(String),
      },
    };
    expect(structured?.err).toEqual(expected);
    expect(bare?.err).toEqual(expected);
    expect(asString?.err).toStartWith(`Error: Failed query: insert into "accounts"`);
    expect(asString?.err).toEndWith("\nparams: [redacted]");
  });

  test("a check violation through the HTTP plugin's renderer: 500 to the client, code and constraint in the log", async () => {
    const { logger, lines, parsed } = capture();
    const wrappedKey = base64(72);
    const app = new Elysia()
      .use(httpPlugin({ service: "test", logger, metrics: new Metrics(), maxBodyBytes: 65536 }))
      .post("/accounts", ({ body }) => handle.db.insert(accounts).values(body as typeof accounts.$inferInsert));
    const other = `grace.${randomSuffix()}@example.org`;
    const response = await app.handle(
      new Request("http://localhost/accounts", {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "r2" },
        body: JSON.stringify({ email: other, passwordHash: hash, wrappedKey }),
      }),
    );
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: 500,
      body: { error: { code: "internal", message: "internal error", request_id: "r2" } },
    });
    const failure = parsed().find((line) => line.msg === "request failed");
    expect(failure).toMatchObject({
      level: "error",
      request_id: "r2",
      err: {
        type: "DrizzleQueryError",
        cause: { code: "23514", table_name: "accounts", constraint_name: "accounts_wrapped_key_length" },
      },
    });
    expectNone(lines, [other, hash, wrappedKey]);
  });

  test("postgres.js errors with their query and parameters exposed (debug) keep only codes and names", async () => {
    const client = postgres(database.url, { max: 1, debug: () => {}, onnotice: () => {} });
    try {
      const error =
        await client`insert into accounts (email, password_hash, wrapped_key) values (${email}, ${hash}, ${"k"})`.catch(
          (caught: unknown) => caught as Record<string, unknown>,
        );
      expect(Object.keys(error)).toEqual(expect.arrayContaining(["query", "parameters", "detail"]));
      const { logger, lines, parsed } = capture();
      logger.error({ err: error }, "query failed");
      expectNone(lines, [email, hash]);
      expect(Object.keys(parsed()[0]?.err as object).sort()).toEqual(
        [
          "code",
          "constraint_name",
          "message",
          "routine",
          "schema_name",
          "severity",
          "stack",
          "table_name",
          "type",
        ].sort(),
      );
    } finally {
      await client.end();
    }
  });
});

describe("redaction by name and by shape", () => {
  const jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1MSIsInRpZXIiOiJwcm8ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
  const secret = "q8Vt3ZkP0xN5aR7mW2yB4cD6eF9gH1jK3lM5nO7pQ9s=";
  const phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g";
  const id = "0b7c2f4e-8d1a-4c3b-9e5f-6a7b8c9d0e1f";
  const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

  test("messages and nested fields lose secret-shaped text; everything else stays", () => {
    const { logger, parsed } = capture();
    logger.info(
      {
        user_id: id,
        path: `/api/v1/agents/configs/${id}`,
        digest,
        status: 500,
        tokens_used: 12,
        upstream: {
          headers: { forwarded: `Bearer ${jwt}` },
          body: { note: `write to ada@example.com`, list: [phc, "ok"] },
        },
        deep: { a: { b: { c: { d: { e: `key ${secret} end` } } } } },
        database: "postgres://adiuva:hunter2-secret@db:5432/adiuva",
        stripe: "sk_live_51Habc123DEFghi",
      },
      `user ada@example.com sent ${jwt} with ${phc}`,
    );
    const { time, ...line } = parsed()[0] as Record<string, unknown>;
    expect(line).toEqual({
      level: "info",
      service: "test",
      user_id: id,
      path: `/api/v1/agents/configs/${id}`,
      digest,
      status: 500,
      tokens_used: 12,
      upstream: {
        headers: { forwarded: "Bearer [redacted]" },
        body: { note: "write to [redacted:email]", list: ["[redacted:argon2]", "ok"] },
      },
      deep: { a: { b: { c: { d: { e: "key [redacted:secret] end" } } } } },
      database: "postgres://[redacted]@db:5432/adiuva",
      stripe: "[redacted:secret]",
      msg: "user [redacted:email] sent [redacted:jwt] with [redacted:argon2]",
    });
  });

  test("fields named like secrets are censored at any depth, bindings of child loggers included", () => {
    const { logger, lines, parsed } = capture();
    logger.child({ email: "ada@example.com" }).warn(
      {
        password: "hunter2",
        request: { body: { user: { password_hash: "plain-looking", apiKey: "abc", refreshToken: "r-1" } } },
        query: { params: ["a", "b"] },
        token_count: 3,
      },
      "nested",
    );
    const { time, ...line } = parsed()[0] as Record<string, unknown>;
    expect(line).toEqual({
      level: "warn",
      service: "test",
      email: "[redacted]",
      password: "[redacted]",
      request: { body: { user: { password_hash: "[redacted]", apiKey: "[redacted]", refreshToken: "[redacted]" } } },
      query: { params: "[redacted]" },
      token_count: 3,
      msg: "nested",
    });
    expectNone(lines, ["hunter2", "plain-looking", "r-1"]);
  });
});
