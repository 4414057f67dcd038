// The monolith's export imported into a real PostgreSQL, then used through the services' own HTTP
// APIs: users sign in with their old passwords, keep their sessions, see their tier, their agent
// configurations and their memories. The data set has 10,000 users and bad lines in every file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { embed } from "ai";
import { count, eq, sql } from "drizzle-orm";
import { decodeProtectedHeader } from "jose";
import { createAgentService } from "../../src/agent";
import { agentConfigs } from "../../src/agent/tables";
import { createAuthService } from "../../src/auth";
import { loadAuthSecrets, unwrapUserKey } from "../../src/auth/crypto";
import { refreshTokens, sessions, users } from "../../src/auth/tables";
import { createBillingService } from "../../src/billing";
import { customers, subscriptions } from "../../src/billing/tables";
import { createChatService } from "../../src/chat";
import { PgMemoryStore } from "../../src/chat/memory/pg-store";
import { ALL_MIGRATIONS } from "../../src/import/all-migrations";
import { legacyUuid, userIdFor } from "../../src/import/ids";
import { ENTITIES, type ImportReport } from "../../src/import/report";
import { runImport } from "../../src/import/run";
import { type DatabaseHandle, openDatabase, rowsOf } from "../../src/shared/db";
import type { Env } from "../../src/shared/env";
import { createLlm } from "../../src/shared/llm";
import { silentLogger } from "../../src/shared/logger";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { FakeOpenAi } from "../../src/shared/testing/fake-openai";
import { type Dataset, LEGACY_PASSWORD, type LegacyUser, PRO_PRICE, writeDataset } from "./dataset";

const USERS = 10_000;
/** Cheap argon2 for the services' own hashing (a sign-in upgrades a legacy hash). */
const FAST_HASH = { PASSWORD_HASH_MEMORY_KIB: "4096", PASSWORD_HASH_TIME_COST: "1" };

let ctx: TestContext;
let fake: FakeOpenAi;
let data: Dataset;
let env: Env;
let database: DatabaseHandle;
let base: string;

const importOnce = (dryRun: boolean): Promise<ImportReport> =>
  runImport({ db: database.db, dir: data.dir, dryRun, env, logger: silentLogger(), migrations: ALL_MIGRATIONS });

beforeAll(async () => {
  ctx = await createTestContext();
  fake = new FakeOpenAi();
  ctx.defer(() => fake.close());
  data = await writeDataset(USERS);
  ctx.defer(() => rmSync(data.dir, { recursive: true, force: true }));
  const overrides = { LLM_BASE_URL: fake.url, LLM_API_KEY: "sk-test", STRIPE_PRICE_PRO: PRO_PRICE, ...FAST_HASH };
  env = await ctx.envFor({ env: overrides });
  database = openDatabase({ url: ctx.databaseUrl, maxConnections: 4 });
  ctx.defer(() => database.close());
});
afterAll(() => ctx.close());

const userId = (user: LegacyUser) => userIdFor(String(user.legacyId));
const countOf = async (table: Parameters<ReturnType<DatabaseHandle["db"]["select"]>["from"]>[0]) =>
  (await database.db.select({ n: count() }).from(table))[0]?.n;

/** The counts a first run reports: every valid line created, every bad one skipped. */
function firstRunCounts() {
  return Object.fromEntries(
    ENTITIES.map((entity) => [
      entity,
      { created: data.expected[entity].valid, updated: 0, unchanged: 0, skipped: data.expected[entity].skipped },
    ]),
  );
}

const countsOf = (report: ImportReport) =>
  Object.fromEntries(
    ENTITIES.map((entity) => {
      const { created, updated, unchanged, skipped } = report.counts[entity];
      return [entity, { created, updated, unchanged, skipped }];
    }),
  );

describe("import of a 10,000-user export", () => {
  test("--dry-run reports what a run would do and writes nothing", async () => {
    const report = await importOnce(true);
    expect(countsOf(report)).toEqual(firstRunCounts());
    const [schema] = rowsOf<{ table: string | null }>(
      await database.db.execute(sql`select to_regclass('auth.users')::text as table`),
    );
    expect(schema?.table).toBeNull();
    expect(fake.embeddingRequests()).toHaveLength(0);
  });

  test("a run creates every valid line and reports each bad one with file:line and reason", async () => {
    const started = performance.now();
    const report = await importOnce(false);
    const seconds = (performance.now() - started) / 1000;
    expect(countsOf(report)).toEqual(firstRunCounts());
    expect(report.problems.map((problem) => `${problem.file}: ${problem.reason}`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^users\.jsonl: malformed JSON/),
        "users.jsonl: email: Invalid input: expected string, received undefined",
        "users.jsonl: password_hash: unknown password hash format",
        "users.jsonl: e-mail already on line 1",
        "users.jsonl: id already on line 1",
        expect.stringMatching(/^users\.jsonl: tier: /),
        "refresh_tokens.jsonl: no imported user with id 777777",
        "refresh_tokens.jsonl: expired",
        expect.stringMatching(/^refresh_tokens\.jsonl: token_sha256: /),
        "subscriptions.jsonl: Stripe customer cus_legacy10 belongs to another user",
        'agent_configs.jsonl: type: unknown agent type "mind_reader"',
        "agent_configs.jsonl: config.path: Invalid input: expected string, received undefined",
        "memories.jsonl: no imported user with id 777777",
      ]),
    );
    for (const problem of report.problems) expect(problem.line).toBeGreaterThan(0);
    expect(await countOf(users)).toBe(USERS + 1);
    // Generous: the run takes about a second here; the bench measures it.
    expect(seconds).toBeLessThan(30);
  });

  test("every imported user has a wrapped encryption key that opens under the master key", async () => {
    const secrets = await loadAuthSecrets(env.MASTER_KEY_FILE);
    const rows = await database.db.select().from(users).limit(50);
    for (const row of rows) expect((await unwrapUserKey(secrets, row.id, row.encryptionKey)).length).toBe(32);
    const [distinct] = rowsOf<{ n: number }>(
      await database.db.execute(sql`select count(distinct encryption_key)::int as n from auth.users`),
    );
    expect(distinct?.n).toBe(USERS + 1);
  });

  test("auth's tier and billing's agree for every imported subscriber", async () => {
    const [mismatches] = rowsOf<{ n: number }>(
      await database.db.execute(
        sql`select count(*)::int as n from billing.customers c join auth.users u on u.id::text = c.user_id
            where u.tier <> c.tier or (u.tier <> 'free' and u.tier_changed_at <> c.tier_changed_at)`,
      ),
    );
    expect(mismatches?.n).toBe(0);
    const tiers = rowsOf<{ tier: string; n: number }>(
      await database.db.execute(sql`select tier, count(*)::int as n from auth.users group by tier order by tier`),
    );
    expect(tiers).toEqual([
      { tier: "free", n: USERS + 1 - USERS / 10 },
      { tier: "pro", n: USERS / 10 },
    ]);
    expect(await countOf(customers)).toBe(USERS / 5);
    expect(await countOf(subscriptions)).toBe(USERS / 5);
  });
});

describe("imported users through the services' APIs", () => {
  beforeAll(async () => {
    const server = await ctx.start([createAuthService, createBillingService, createAgentService, createChatService], {
      env: { LLM_BASE_URL: fake.url, LLM_API_KEY: "sk-test", STRIPE_PRICE_PRO: PRO_PRICE, ...FAST_HASH },
    });
    base = server.url;
  });

  const login = (user: LegacyUser, password = LEGACY_PASSWORD) =>
    fetch(`${base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: user.email, password }),
    });
  const getJson = async (path: string, token: string) => {
    const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const signIn = async (user: LegacyUser) => {
    const response = await login(user);
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  };

  for (const format of ["argon2id", "bcrypt", "pbkdf2-sha256"] as const) {
    test(`a user whose monolith hash is ${format} signs in with their old password, and not with another`, async () => {
      const user = data.byFormat[format];
      expect((await login(user, "not the password")).status).toBe(401);
      const response = await login(user);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { user: { id: string; email: string } };
      expect(body.user).toMatchObject({ id: userId(user), email: user.email });
    });
  }

  test("a user the monolith keyed by UUID keeps that id: a token naming it (as the monolith's do) finds the user", async () => {
    const token = await ctx.token(data.uuidUser.id);
    expect((await getJson("/api/v1/auth/me", token)).body).toMatchObject({
      id: data.uuidUser.id,
      email: data.uuidUser.email,
    });
  });

  test("a subscriber sees the tier of their subscription in GET /auth/me and GET /billing/subscription", async () => {
    const token = await signIn(data.proUser);
    expect((await getJson("/api/v1/auth/me", token)).body).toMatchObject({ tier: "pro" });
    expect((await getJson("/api/v1/billing/subscription", token)).body).toMatchObject({
      tier: "pro",
      status: "active",
    });
    const canceled = await signIn(data.canceledUser);
    expect((await getJson("/api/v1/auth/me", canceled)).body).toMatchObject({ tier: "free" });
    expect((await getJson("/api/v1/billing/subscription", canceled)).body).toMatchObject({
      tier: "free",
      status: "canceled",
    });
  });

  test("a user lists their imported agent configuration, validated and with defaults applied", async () => {
    const token = await signIn(data.agentUser);
    const { status, body } = await getJson("/api/v1/agents/configs", token);
    expect(status).toBe(200);
    expect(body.configs).toEqual([
      expect.objectContaining({
        id: legacyUuid("agent_config", `cfg-${data.agentUser.legacyId}`),
        type: "filesystem",
        kind: "local",
        name: "Filesystem agent",
        config: expect.objectContaining({
          path: `/Users/u${data.agentUser.legacyId}/Documents`,
          extensions: [".md", ".txt"],
          recursive: true,
        }),
      }),
    ]);
  });

  test("a user's memories are listed and recalled for them, and for nobody else", async () => {
    const token = await signIn(data.agentUser);
    const { body } = await getJson("/api/v1/chat/memories", token);
    expect((body.items as Array<{ text: string }>).map((item) => item.text)).toContain(data.memoryText);
    const store = new PgMemoryStore(database.db);
    const { embedding } = await embed({ model: createLlm(env, silentLogger()).embeddingModel, value: data.memoryText });
    const found = await store.search(userId(data.agentUser), embedding, 1, 0.25);
    expect(found.map((memory) => memory.text)).toEqual([data.memoryText]);
    expect(await store.search(userId(data.proUser), embedding, 5, 0.25)).toEqual([]);
  });

  test("a monolith refresh token is exchanged once for an RS256 pair; replayed after the grace window it ends the session", async () => {
    const user = data.byFormat.bcrypt;
    const legacy = data.tokens.get(user.legacyId) as string;
    const refresh = (token: string) =>
      fetch(`${base}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    const first = await refresh(legacy);
    expect(first.status).toBe(200);
    const pair = (await first.json()) as { access_token: string; refresh_token: string };
    expect(decodeProtectedHeader(pair.access_token).alg).toBe("RS256");
    expect((await getJson("/api/v1/auth/me", pair.access_token)).body).toMatchObject({ id: userId(user) });

    const rotated = await refresh(pair.refresh_token);
    expect(rotated.status).toBe(200);
    const next = (await rotated.json()) as { refresh_token: string };

    // The grace window (AUTH_REFRESH_GRACE_S) is over: the legacy token's use moves into the past.
    const tokenId = legacyUuid("refresh_token", `rt-${user.legacyId}`);
    await database.db
      .update(refreshTokens)
      .set({ usedAt: sql`${refreshTokens.usedAt} - interval '1 minute'` })
      .where(eq(refreshTokens.id, tokenId));
    expect((await refresh(legacy)).status).toBe(401);
    const [session] = await database.db
      .select()
      .from(sessions)
      .where(eq(sessions.id, legacyUuid("session", `rt-${user.legacyId}`)));
    expect(session?.revokedReason).toBe("reuse_detected");
    expect((await refresh(next.refresh_token)).status).toBe(401);
  });
});

describe("running the import again", () => {
  test("changes nothing: 0 created, 0 updated, every valid line unchanged, the same lines skipped", async () => {
    const before = await database.db.select({ id: users.id, hash: users.passwordHash }).from(users);
    const report = await importOnce(false);
    expect(countsOf(report)).toEqual(
      Object.fromEntries(
        ENTITIES.map((entity) => [
          entity,
          { created: 0, updated: 0, unchanged: data.expected[entity].valid, skipped: data.expected[entity].skipped },
        ]),
      ),
    );
    // Sign-ins above replaced some legacy hashes with argon2id: the re-run kept those.
    const after = new Map(
      (await database.db.select({ id: users.id, hash: users.passwordHash }).from(users)).map((row) => [row.id, row]),
    );
    for (const row of before) expect(after.get(row.id)?.hash).toBe(row.hash);
    expect(await countOf(agentConfigs)).toBe(data.expected.agent_configs.valid);
  });

  test("a changed line is updated, and only that one", async () => {
    const file = `${data.dir}/agent_configs.jsonl`;
    const original = await Bun.file(file).text();
    const changed = original.replace(
      `"config":{"path":"/Users/u20/Documents"`,
      `"config":{"path":"/Users/u20/Archive"`,
    );
    expect(changed).not.toBe(original);
    await Bun.write(file, changed);
    try {
      const report = await importOnce(false);
      expect(report.counts.agent_configs).toMatchObject({
        created: 0,
        updated: 1,
        unchanged: data.expected.agent_configs.valid - 1,
      });
      expect(report.counts.users).toMatchObject({ created: 0, updated: 0 });
    } finally {
      await Bun.write(file, original);
    }
  });
});
