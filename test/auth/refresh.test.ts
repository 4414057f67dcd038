// Refresh-token rotation against real PostgreSQL. "After the grace window" is reached by moving
// the token's used_at back in the database instead of waiting.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { errorCode, post, registerUser, type SessionBody, startAuth } from "./helpers";

let ctx: TestContext;
let base: string;
let sql: postgres.Sql;
beforeAll(async () => {
  ctx = await createTestContext();
  base = (await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } })).url;
  sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
  await ctx.close();
});

const refresh = (token: string) => post(base, "/refresh", { refresh_token: token });
const familyOf = async (userId: string) => [
  ...(await sql<Array<{ used: boolean; revoked_reason: string | null }>>`
    select used_at is not null as used, revoked_reason from auth.refresh_tokens where user_id = ${userId} order by created_at`),
];

describe("POST /refresh", () => {
  test("rotates: a new refresh token in the same session and a fresh access token", async () => {
    const session = await registerUser(base);
    const response = await refresh(session.refresh_token);
    expect(response.status).toBe(200);
    const next = (await response.json()) as SessionBody;
    expect(next.refresh_token).not.toBe(session.refresh_token);
    expect(next.access_token).not.toBe(session.access_token);
    expect((await refresh(next.refresh_token)).status).toBe(200);
  });

  test("10 parallel refreshes of one token give one successor and no revocation", async () => {
    const session = await registerUser(base);
    const responses = await Promise.all(Array.from({ length: 10 }, () => refresh(session.refresh_token)));
    expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200));
    const successors = new Set(
      await Promise.all(responses.map(async (response) => ((await response.json()) as SessionBody).refresh_token)),
    );
    expect(successors.size).toBe(1);
    expect(await familyOf(session.user.id)).toEqual([
      { used: true, revoked_reason: null },
      { used: false, revoked_reason: null },
    ]);
    expect((await refresh([...successors][0]!)).status).toBe(200);
  });

  test("a replay after the grace window revokes the whole family", async () => {
    const session = await registerUser(base);
    const next = (await (await refresh(session.refresh_token)).json()) as SessionBody;
    await sql`update auth.refresh_tokens set used_at = now() - interval '1 hour' where used_at is not null and user_id = ${session.user.id}`;
    const replay = await refresh(session.refresh_token);
    expect(replay.status).toBe(401);
    expect(await errorCode(replay)).toBe("invalid_refresh_token");
    // The legitimate holder's successor dies with the family: the thief's copy is worthless too.
    expect((await refresh(next.refresh_token)).status).toBe(401);
    expect((await familyOf(session.user.id)).map((row) => row.revoked_reason)).toEqual([
      "reuse_detected",
      "reuse_detected",
    ]);
  });

  test("other sessions of the user survive a revoked family", async () => {
    const session = await registerUser(base);
    const other = (await (
      await post(
        base,
        "/login",
        { email: session.user.email, password: "correct horse battery" },
        { "x-forwarded-for": "10.9.9.9" },
      )
    ).json()) as SessionBody;
    await refresh(session.refresh_token);
    await sql`update auth.refresh_tokens set used_at = now() - interval '1 hour' where used_at is not null and user_id = ${session.user.id}`;
    expect((await refresh(session.refresh_token)).status).toBe(401);
    expect((await refresh(other.refresh_token)).status).toBe(200);
  });

  test("unknown, expired and malformed tokens are refused", async () => {
    expect((await refresh("art_unknown")).status).toBe(401);
    const session = await registerUser(base);
    await sql`update auth.refresh_tokens set expires_at = now() - interval '1 second' where user_id = ${session.user.id}`;
    expect((await refresh(session.refresh_token)).status).toBe(401);
    expect((await post(base, "/refresh", {})).status).toBe(422);
    expect((await post(base, "/refresh", { refresh_token: "x".repeat(500) })).status).toBe(422);
  });

  test("only the hash of a refresh token is stored", async () => {
    const session = await registerUser(base);
    const rows = await sql`select token_hash from auth.refresh_tokens where user_id = ${session.user.id}`;
    expect(rows.length).toBe(1);
    expect(rows[0]?.token_hash).not.toContain(session.refresh_token.slice(4));
  });
});
