// Strategy: a restore drill on real PostgreSQL with the real tools. Users are made through the
// services' HTTP APIs (auth, chat on the fake OpenAI server, agent, billing on the fake Stripe API
// with signed webhooks: test/e2e/stack.ts). infra/backup/backup.sh runs as a subprocess in its
// one-shot mode, so the dump is the backup service's own pg_dump command line; `pg_restore` loads
// it into a fresh, empty database. The services then start on that database with a Redis key prefix
// of their own (nothing carried over in Redis) and the same key files (the master key restored from
// its own backup), and each user's data is read back through the APIs. Skipped, saying why, only
// where pg_dump or pg_restore is not installed (.ci/run installs postgresql-client).
// "backup script" runs the script's other behaviour as subprocesses on a test database: retention,
// a failing pg_dump, the healthcheck (file times set with utimes), the password file (a stand-in
// pg_dump first on the PATH records what it got), the step down to BACKUP_RUN_AS (only as root with
// su-exec or gosu installed), and the service loop's start and SIGTERM.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import postgres from "postgres";
import { createAgentService } from "../../src/agent";
import { createBillingService } from "../../src/billing";
import { generateMasterKey } from "../../src/shared/auth/keygen";
import type { RunningServer } from "../../src/shared/server";
import {
  createTestContext,
  eventually,
  startFakeOpenAi,
  TEST_DATABASE_URL,
  type TestContext,
} from "../../src/shared/testing";
import { get, PASSWORD, post, randomIp, type SessionBody, startAuth } from "../auth/helpers";
import { billingEnv } from "../billing/harness";
import { startChat } from "../chat/gateway/helpers";
import { type SignedIn, type Stack, startStack, tierClaim } from "../e2e/stack";
import { isolatedEnv } from "./service-process";

const pgDump = Bun.which("pg_dump");
const pgRestore = Bun.which("pg_restore");
const missing = [pgDump ? "" : "pg_dump", pgRestore ? "" : "pg_restore"].filter(Boolean);
if (missing.length > 0) {
  console.warn(`restore drill skipped: ${missing.join(" and ")} not installed (Debian: postgresql-client)`);
}

// biome-ignore lint/suspicious/noExplicitAny: API answers are compared whole, before and after
type Json = any;
interface Answer {
  status: number;
  body: Json;
}

async function call(base: string, method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Everything a user can read back, through the APIs a client uses. */
interface UserView {
  me: Answer;
  encryptionKey: Answer;
  conversations: Answer;
  conversation: Answer;
  configs: Answer;
  subscription: Answer;
}

interface Services {
  auth: string;
  chat: string;
  agent: string;
  billing: string;
}

async function viewOf(services: Services, accessToken: string, chatId: string): Promise<UserView> {
  return {
    me: await call(services.auth, "GET", "/auth/me", accessToken),
    encryptionKey: await call(services.auth, "GET", "/auth/me/encryption-key", accessToken),
    conversations: await call(services.chat, "GET", "/chat/conversations", accessToken),
    conversation: await call(services.chat, "GET", `/chat/conversations/${chatId}`, accessToken),
    configs: await call(services.agent, "GET", "/agents/configs", accessToken),
    subscription: await call(services.billing, "GET", "/billing/subscription", accessToken),
  };
}

interface Populated {
  user: SignedIn;
  /** A second session's refresh token, issued before the dump and never used before the restore. */
  spareRefreshToken: string;
  chatId: string;
  tier: "free" | "pro";
  before: UserView;
}

/** The backup script's environment: libpq's variables for `databaseUrl`, dumps into `dir`. */
function scriptEnv(databaseUrl: string, dir: string, more: Record<string, string> = {}): Record<string, string> {
  const url = new URL(databaseUrl);
  return isolatedEnv({
    PGHOST: url.hostname,
    PGPORT: url.port || "5432",
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: url.password ? decodeURIComponent(url.password) : undefined,
    PGDATABASE: url.pathname.slice(1),
    BACKUP_DIR: dir,
    ...more,
  });
}

function runScript(args: string[], env: Record<string, string>) {
  const result = Bun.spawnSync(["sh", "infra/backup/backup.sh", ...args], { env, stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

/** Runs the backup script once, as the backup service would, into `dir`; returns the dump's path. */
function backupOnce(databaseUrl: string, dir: string): string {
  const result = runScript(["once"], scriptEnv(databaseUrl, dir));
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  const dumps = readdirSync(dir);
  expect(dumps).toEqual([expect.stringMatching(/^adiuva-\d{8}T\d{6}Z\.dump$/)]);
  return `${dir}/${dumps[0]}`;
}

async function dropDatabase(databaseUrl: string): Promise<void> {
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database "${new URL(databaseUrl).pathname.slice(1)}" with (force)`);
  } finally {
    await admin.end();
  }
}

describe.skipIf(missing.length > 0)("restore drill", () => {
  let stack: Stack;
  let restored: TestContext;
  let backupDir: string;
  let source: Services;
  let target: Services;
  const users: Populated[] = [];

  beforeAll(async () => {
    backupDir = mkdtempSync(`${tmpdir()}/adiuva-backup-`);
    stack = await startStack();
    const llm = startFakeOpenAi();
    stack.ctx.defer(() => llm.close());
    const agent = await stack.ctx.start([(platform) => createAgentService(platform)], {
      service: "agent",
      env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" },
    });
    source = { auth: stack.authUrl, chat: stack.chat.url, agent: agent.url, billing: stack.billing.url };

    for (const tier of ["pro", "free"] as const) {
      const user = await stack.signUp();
      if (tier === "pro") {
        const paid = await stack.checkoutAndPay(user, "pro");
        expect(await stack.webhook(stack.stripe.event("checkout.session.completed", paid.session))).toEqual({
          status: 200,
          body: { received: true, outcome: "processed" },
        });
        expect(await stack.tierBecomes(user.userId, "pro")).toBe("pro");
      }
      // Tokens carrying the current tier; the spare session is the one only the restore will use.
      const current = await stack.login(user.email);
      const spare = await stack.login(user.email);
      const first = await call(source.chat, "POST", "/chat", current.accessToken, { text: `Hello from ${tier}` });
      expect(first.status).toBe(200);
      const chatId = String(first.body.chat_id);
      const second = await call(source.chat, "POST", "/chat", current.accessToken, {
        text: "And a follow-up.",
        chat_id: chatId,
      });
      expect(second.status).toBe(200);
      const config = await call(source.agent, "POST", "/agents/configs", current.accessToken, {
        type: "filesystem",
        name: `Notes of ${tier}`,
        config: { path: `/home/${tier}/notes` },
      });
      expect(config.status).toBe(201);
      users.push({
        user: current,
        spareRefreshToken: spare.refreshToken,
        chatId,
        tier,
        before: await viewOf(source, current.accessToken, chatId),
      });
    }

    const dump = backupOnce(stack.ctx.databaseUrl, backupDir);

    // A new database and a new Redis key prefix: the restore target knows nothing but the dump.
    restored = await createTestContext();
    const result = Bun.spawnSync(
      [
        pgRestore as string,
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        `--dbname=${restored.databaseUrl}`,
        dump,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect({ code: result.exitCode, stderr: result.stderr.toString() }).toEqual({ code: 0, stderr: "" });

    // The source goes away before anything starts on the restore: its services stop and its
    // database is dropped (the fake Stripe, like the real one, lives on).
    await Promise.all([stack.stopAuth(), stack.chat.stop(), agent.stop(), stack.billing.stop()]);
    await dropDatabase(stack.ctx.databaseUrl);

    const restoredLlm = startFakeOpenAi();
    restored.defer(() => restoredLlm.close());
    const llmEnv = { LLM_BASE_URL: restoredLlm.url, LLM_API_KEY: "sk-test" };
    const auth: RunningServer = await startAuth(restored, { env: { TRUSTED_PROXY_HOPS: "1" } });
    const chat = await startChat(restored, { env: llmEnv });
    const restoredAgent = await restored.start([(platform) => createAgentService(platform)], {
      service: "agent",
      env: llmEnv,
    });
    const billing = await restored.start([createBillingService], {
      service: "billing",
      env: billingEnv(stack.stripe),
    });
    target = { auth: auth.url, chat: chat.url, agent: restoredAgent.url, billing: billing.url };
  });

  afterAll(async () => {
    await stack?.ctx.close();
    await restored?.close();
    rmSync(backupDir, { recursive: true, force: true });
  });

  const login = (email: string, password: string) =>
    post(target.auth, "/login", { email, password }, { "x-forwarded-for": randomIp() });

  test("users sign in with their passwords, and only with them: the argon2 hashes survived", async () => {
    expect(users.map((each) => each.tier)).toEqual(["pro", "free"]);
    for (const { user, tier } of users) {
      const refused = await login(user.email, `${PASSWORD} not`);
      expect({ email: user.email, status: refused.status }).toEqual({ email: user.email, status: 401 });
      const signedIn = await login(user.email, PASSWORD);
      expect({ email: user.email, status: signedIn.status }).toEqual({ email: user.email, status: 200 });
      const session = (await signedIn.json()) as SessionBody;
      expect({ id: session.user.id, tier: tierClaim(session.access_token) }).toEqual({ id: user.userId, tier });
    }
  });

  test("a refresh token issued before the dump still works after the restore", async () => {
    for (const { user, spareRefreshToken, tier } of users) {
      const refreshed = await post(target.auth, "/refresh", { refresh_token: spareRefreshToken });
      expect({ email: user.email, status: refreshed.status }).toEqual({ email: user.email, status: 200 });
      const session = (await refreshed.json()) as SessionBody;
      expect(tierClaim(session.access_token)).toBe(tier);
      const me = await get(target.auth, "/me", session.access_token);
      expect(me.status).toBe(200);
    }
  });

  test("conversations, messages, agent configurations, subscriptions and encryption keys read back unchanged", async () => {
    for (const { user, chatId, before } of users) {
      expect(Object.values(before).map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200, 200]);
      // Access tokens issued before the dump stay valid: same signing keys, session still live.
      const after = await viewOf(target, user.accessToken, chatId);
      expect(after).toEqual(before);
    }
    const [pro, free] = users;
    expect(pro?.before.conversation.body.messages.map((message: { role: string }) => message.role)).toEqual([
      "user",
      "assistant",
      "user",
      "assistant",
    ]);
    expect(pro?.before.configs.body.configs).toEqual([expect.objectContaining({ name: "Notes of pro" })]);
    expect(pro?.before.subscription.body).toEqual(expect.objectContaining({ tier: "pro" }));
    expect(free?.before.me.body).toEqual(expect.objectContaining({ tier: "free" }));
    expect(pro?.before.encryptionKey.status).toBe(200);
  });

  test("without the master key the restored encryption keys cannot be read", async () => {
    const other = `${backupDir}/other-master.key`;
    writeFileSync(other, generateMasterKey());
    const auth = await startAuth(restored, { env: { MASTER_KEY_FILE: other } });
    const { user, before } = users[0] as Populated;
    const answer = await call(auth.url, "GET", "/auth/me/encryption-key", user.accessToken);
    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 500, code: "internal" });
    expect(JSON.stringify(answer.body)).not.toContain(before.encryptionKey.body.key);
  });

  test("the restored database takes new writes: a turn appended to an old conversation, a new configuration", async () => {
    const { user, chatId } = users[0] as Populated;
    const turn = await call(target.chat, "POST", "/chat", user.accessToken, { text: "Still there?", chat_id: chatId });
    expect(turn.status).toBe(200);
    const conversation = await call(target.chat, "GET", `/chat/conversations/${chatId}`, user.accessToken);
    expect(conversation.body.messages).toHaveLength(6);
    const config = await call(target.agent, "POST", "/agents/configs", user.accessToken, {
      type: "filesystem",
      name: "After the restore",
      config: { path: "/home/pro/later" },
    });
    expect(config.status).toBe(201);
    expect((await call(target.agent, "GET", "/agents/configs", user.accessToken)).body.configs).toHaveLength(2);
  });
});

/** Processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.skipIf(missing.length > 0)("backup script", () => {
  let ctx: TestContext;
  let dir: string;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());
  beforeEach(() => {
    dir = mkdtempSync(`${tmpdir()}/adiuva-backup-`);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const dumps = () => readdirSync(dir).sort();
  const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000);

  test("keeps the newest BACKUP_KEEP dumps and leaves other files alone", () => {
    for (const name of ["adiuva-20240101T000000Z.dump", "adiuva-20240102T000000Z.dump", "notes.txt"]) {
      writeFileSync(`${dir}/${name}`, "old");
    }
    const result = runScript(["once"], scriptEnv(ctx.databaseUrl, dir, { BACKUP_KEEP: "2" }));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`removed ${dir}/adiuva-20240101T000000Z.dump`);
    expect(dumps()).toEqual([
      "adiuva-20240102T000000Z.dump",
      expect.stringMatching(/^adiuva-\d{8}T\d{6}Z\.dump$/),
      "notes.txt",
    ]);
  });

  test("a failed pg_dump exits non-zero and leaves no file behind", () => {
    const env = scriptEnv(ctx.databaseUrl, dir, { PGDATABASE: `missing_${crypto.randomUUID().slice(0, 8)}` });
    const result = runScript(["once"], env);
    expect({ code: result.code, failed: result.stderr.includes("pg_dump failed") }).toEqual({ code: 1, failed: true });
    expect(dumps()).toEqual([]);
  });

  test("check: healthy while the newest dump is younger than two intervals", () => {
    const env = scriptEnv(ctx.databaseUrl, dir, { BACKUP_INTERVAL_H: "6" });
    expect(runScript(["check"], env).code).toBe(2);
    const dump = `${dir}/adiuva-20240101T000000Z.dump`;
    writeFileSync(dump, "x");
    utimesSync(dump, hoursAgo(13), hoursAgo(13));
    expect(runScript(["check"], env).code).toBe(2);
    // A temporary file is never a dump, however new.
    writeFileSync(`${dir}/.adiuva-20240102T000000Z.dump.partial`, "x");
    expect(runScript(["check"], env).code).toBe(2);
    utimesSync(dump, hoursAgo(11), hoursAgo(11));
    expect(runScript(["check"], env).code).toBe(0);
  });

  test("PGPASSWORD_FILE: the password is read from the file and handed to pg_dump", () => {
    // A stand-in pg_dump first on the PATH writes the password it was given as the dump.
    const bin = `${dir}/bin`;
    mkdirSync(bin);
    writeFileSync(
      `${bin}/pg_dump`,
      `#!/bin/sh\nfor arg; do case "$arg" in --file=*) printf %s "$PGPASSWORD" >"\${arg#--file=}" ;; esac; done\n`,
      { mode: 0o755 },
    );
    writeFileSync(`${dir}/password`, "s3cret/@#%");
    const env = scriptEnv(ctx.databaseUrl, `${dir}/dumps`, { PGPASSWORD_FILE: `${dir}/password` });
    const result = runScript(["once"], { ...env, PATH: `${bin}:${env.PATH}` });
    expect(result.code).toBe(0);
    const [dump] = readdirSync(`${dir}/dumps`);
    expect(readFileSync(`${dir}/dumps/${dump}`, "utf8")).toBe("s3cret/@#%");
  });

  test("refuses settings that are not positive whole numbers", () => {
    for (const [key, value] of [
      ["BACKUP_INTERVAL_H", "0"],
      ["BACKUP_KEEP", "-1"],
      ["BACKUP_KEEP", "ten"],
    ] as const) {
      const result = runScript(["once"], scriptEnv(ctx.databaseUrl, dir, { [key]: value }));
      expect({ key, code: result.code, stderr: result.stderr.trim() }).toEqual({
        key,
        code: 2,
        stderr: expect.stringContaining(`${key} must be a positive whole number, got '${value}'`),
      });
    }
    expect(dumps()).toEqual([]);
  });

  // As the compose service starts: root, with the image's tool to step down (gosu on Debian).
  const stepDown = Bun.which("su-exec") ?? Bun.which("gosu");
  const asRoot = process.getuid?.() === 0;
  test.skipIf(!stepDown || !asRoot)("BACKUP_RUN_AS: started as root, the dump is written as that user", () => {
    const parent = mkdtempSync(`${tmpdir()}/adiuva-backup-volume-`);
    try {
      chmodSync(parent, 0o755);
      const volume = `${parent}/backups`;
      const result = runScript(["once"], scriptEnv(ctx.databaseUrl, volume, { BACKUP_RUN_AS: "postgres" }));
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
      const [dump] = readdirSync(volume);
      const owner = Bun.spawnSync(["stat", "-c", "%U %a", `${volume}/${dump}`])
        .stdout.toString()
        .trim();
      expect(owner).toBe("postgres 600");
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test("the service loop clears leftover temporary files, dumps at once, and stops at SIGTERM", async () => {
    writeFileSync(`${dir}/.adiuva-20240101T000000Z.dump.partial`, "cut short");
    const child = Bun.spawn(["sh", "infra/backup/backup.sh"], {
      env: scriptEnv(ctx.databaseUrl, dir, { BACKUP_INTERVAL_H: "1" }),
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const seen = await eventually(
        () => dumps(),
        (names) => names.some((name) => name.endsWith(".dump")),
      );
      expect(seen).toEqual([expect.stringMatching(/^adiuva-\d{8}T\d{6}Z\.dump$/)]);
      // The wait for the next dump: one child process.
      const waiting = await eventually(
        () => childrenOf(child.pid),
        (pids) => pids.length === 1,
      );
      child.kill("SIGTERM");
      const code = await Promise.race([child.exited, Bun.sleep(5000).then(() => "still running")]);
      expect(code).toBe(0);
      // Nothing of it is left running, the wait included.
      const left = await eventually(
        () => waiting.filter((pid) => existsSync(`/proc/${pid}`)),
        (pids) => pids.length === 0,
      );
      expect(left).toEqual([]);
      expect(runScript(["check"], scriptEnv(ctx.databaseUrl, dir, { BACKUP_INTERVAL_H: "1" })).code).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
