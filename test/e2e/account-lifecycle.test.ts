// Strategy: auth, chat, agent, billing, storage and plugins each run as their own process (`bun src/main.ts` with
// SERVICE_NAME set, an isolated environment: service-process.ts) on one test database and one Redis
// key prefix, as the containers do. Stripe, Qdrant and the LLM are the fakes at the HTTP boundary;
// the user's device is the SDK's DeviceClient on chat's WebSocket. A user signs up, fills every
// service through the APIs, exports, deletes the account; afterwards the database (every table with
// a user_id), the Qdrant fake and the Stripe fake's requests show the erasure. One test stops the
// agent process during the deletion and checks it erases when it comes back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { QdrantMemoryStore } from "../../src/chat/memory/qdrant-store";
import { DeviceClient } from "../../src/client";
import type { ServiceName } from "../../src/shared/env";
import {
  createTestContext,
  eventually,
  startFakeOpenAi,
  TEST_REDIS_URL,
  type TestContext,
  testKeys,
} from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import { FAST_HASH, PASSWORD, post, randomIp, registerUser, type SessionBody } from "../auth/helpers";
import { nonZero, rowsOfUser } from "../auth/lifecycle-world";
import { billingEnv, WEBHOOK_SECRET } from "../billing/harness";
import { FakeQdrant } from "../chat/fake-qdrant";
import { isolatedEnv, ServiceProcess } from "../infra/service-process";
import { keyPair } from "../plugins/harness";

const COLLECTION = "chat_memories_e2e";

let ctx: TestContext;
let sql: postgres.Sql;
let stripe: FakeStripe;
let qdrant: FakeQdrant;
let dataDir: string;
const processes = new Map<ServiceName, { process: ServiceProcess; url: string }>();
let envs: Record<string, Record<string, string>>;

async function startService(name: ServiceName): Promise<void> {
  const process = new ServiceProcess(["bun", "src/main.ts"], isolatedEnv({ SERVICE_NAME: name, ...envs[name] }));
  const port = await process.port();
  processes.set(name, { process, url: `http://127.0.0.1:${port}` });
}

async function stopService(name: ServiceName): Promise<void> {
  const running = processes.get(name);
  if (!running) return;
  running.process.signal("SIGTERM");
  expect(await running.process.exited(15_000)).toBe(0);
  processes.delete(name);
}

const urlOf = (name: ServiceName) => {
  const running = processes.get(name);
  if (!running) throw new Error(`${name} is not running`);
  return running.url;
};

beforeAll(async () => {
  ctx = await createTestContext();
  sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  stripe = new FakeStripe();
  stripe.start();
  qdrant = new FakeQdrant();
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  dataDir = mkdtempSync(join(tmpdir(), "adiuva-lifecycle-e2e-"));
  const keys = await testKeys();
  const common = {
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: ctx.databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
    SHUTDOWN_GRACE_MS: "2000",
    DATA_DIR: dataDir,
  };
  const llmEnv = { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" };
  envs = {
    auth: {
      ...common,
      ...FAST_HASH,
      JWT_PRIVATE_KEY_FILE: keys.privateKeyFile,
      MASTER_KEY_FILE: keys.masterKeyFile,
      TRUSTED_PROXY_HOPS: "1",
    },
    chat: { ...common, ...llmEnv, QDRANT_URL: qdrant.url, QDRANT_COLLECTION: COLLECTION },
    agent: { ...common, ...llmEnv, AGENT_JOB_LOCK_MS: "2000", AGENT_STALLED_INTERVAL_MS: "500" },
    billing: { ...common, ...billingEnv(stripe) },
    // Its local object store under DATA_DIR; documents indexed in PostgreSQL.
    storage: { ...common, ...llmEnv },
    plugins: { ...common },
  };
  await Promise.all((["auth", "chat", "agent", "billing", "storage", "plugins"] as const).map(startService));
}, 120_000);

afterAll(async () => {
  for (const { process } of processes.values()) await process[Symbol.asyncDispose]();
  stripe.stop();
  await qdrant.close();
  await sql.end();
  await ctx.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface User {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
}

async function signUp(): Promise<User> {
  const registered = await registerUser(urlOf("auth"));
  const response = await post(
    urlOf("auth"),
    "/login",
    { email: registered.user.email, password: PASSWORD },
    { "x-forwarded-for": randomIp() },
  );
  const session = (await response.json()) as SessionBody;
  return {
    userId: session.user.id,
    email: session.user.email,
    accessToken: session.access_token,
    refreshToken: session.refresh_token,
  };
}

async function call(service: ServiceName, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${urlOf(service)}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: response.status, body: parsed, bytes: text };
}

/** The user's device on chat: answers every listing slowly, so an agent run stays running. */
async function connectDevice(user: User) {
  const closes: number[] = [];
  const client = new DeviceClient({
    url: `${urlOf("chat").replace(/^http/, "ws")}/api/v1/ws/device`,
    deviceId: `device-${crypto.randomUUID().slice(0, 8)}`,
    token: () => user.accessToken,
    backoff: { initialMs: 50, maxMs: 400 },
    tools: {
      fs_list_dir: async () => {
        await Bun.sleep(3000);
        return { entries: [], next_cursor: null };
      },
    },
  });
  client.on("close", ({ code }) => closes.push(code));
  await client.connect();
  return { client, closes };
}

/** Something of the user in every service, through their APIs (memories with the real Qdrant adapter). */
async function seed(user: User) {
  const chatted = await call("chat", "POST", "/chat", user.accessToken, { text: "my sister is called Ada" });
  expect(chatted.status).toBe(200);
  const store = new QdrantMemoryStore({ url: qdrant.url, collection: COLLECTION, dimensions: 64 });
  await store.add(user.userId, [
    { id: crypto.randomUUID(), text: "has a sister, Ada", vector: Array.from({ length: 64 }, (_, i) => Math.cos(i)) },
  ]);
  const config = await call("agent", "POST", "/agents/configs", user.accessToken, {
    type: "filesystem",
    name: "Notes",
    config: { path: "/home/ada/notes" },
  });
  expect(config.status).toBe(201);
  const checkout = await call("billing", "POST", "/billing/checkout", user.accessToken, { tier: "pro" });
  expect(checkout.status).toBe(200);
  const paid = stripe.completeCheckout(String(checkout.body.url).split("/").pop() ?? "");
  const payload = stripe.event("checkout.session.completed", paid.session);
  const hook = await fetch(`${urlOf("billing")}/api/v1/billing/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": await signWebhook(payload, WEBHOOK_SECRET) },
    body: payload,
  });
  expect(hook.status).toBe(200);
  const developer = await call("plugins", "POST", "/plugins/developers/me", user.accessToken, {
    display_name: "Ada",
    public_key: keyPair().publicKey,
  });
  expect(developer.status).toBe(201);
  return {
    chatId: chatted.body.chat_id as string,
    configId: config.body.id as string,
    subscriptionId: paid.subscription.id,
    customerId: String(paid.subscription.customer),
  };
}

const qdrantPoints = (userId: string) =>
  [...(qdrant.collections.get(COLLECTION)?.points.values() ?? [])].filter((point) => point.payload.user_id === userId);

const erasedEverywhere = (userId: string, timeoutMs = 60_000) =>
  eventually(
    async () => nonZero(await rowsOfUser(sql, userId)),
    (counts) => JSON.stringify(counts) === JSON.stringify({ "auth.deleted_users": 1 }),
    timeoutMs,
    200,
  );

describe("account lifecycle across service processes", () => {
  test("export, then deletion: sessions end, the device socket closes 4403, nothing of the user is left anywhere", async () => {
    const user = await signUp();
    const seeded = await seed(user);
    const device = await connectDevice(user);
    const run = await call("agent", "POST", "/agents/trigger", user.accessToken, { config_id: seeded.configId });
    expect(run.status).toBe(202);
    // Listing the device's directory takes 3 s: the run is running when the account goes.
    const status = await eventually(
      async () => (await sql`select status from agent.agent_run_logs where id = ${run.body.run_id}`)[0]?.status,
      (seen) => seen === "running",
    );
    expect(status).toBe("running");

    // The export, assembled by auth from every process's part.
    const asked = await call("auth", "POST", "/auth/me/export", user.accessToken);
    expect(asked.status).toBe(202);
    await eventually(
      async () => (await sql`select status from auth.exports where id = ${asked.body.id}`)[0]?.status,
      (status) => status === "ready",
      30_000,
      100,
    );
    const archive = await fetch(`${urlOf("auth")}/api/v1/auth/me/exports/${asked.body.id}/download`, {
      headers: { authorization: `Bearer ${user.accessToken}` },
    });
    expect(archive.status).toBe(200);
    const dir = mkdtempSync(join(tmpdir(), "adiuva-e2e-export-"));
    try {
      writeFileSync(join(dir, "export.tar.gz"), new Uint8Array(await archive.arrayBuffer()));
      const listed = Bun.spawnSync(["tar", "-tzf", "export.tar.gz"], { cwd: dir }).stdout.toString().trim().split("\n");
      expect(listed.sort()).toEqual([
        "agent.json",
        "auth.json",
        "billing.json",
        "chat.json",
        "manifest.json",
        "plugins.json",
        "storage.json",
      ]);
      const chatPart = Bun.spawnSync(["tar", "-xzOf", "export.tar.gz", "chat.json"], { cwd: dir }).stdout.toString();
      expect(JSON.parse(chatPart).conversations[0]).toMatchObject({ id: seeded.chatId });
      expect(chatPart).toContain("my sister is called Ada");
      const billingPart = Bun.spawnSync(["tar", "-xzOf", "export.tar.gz", "billing.json"], {
        cwd: dir,
      }).stdout.toString();
      expect(JSON.parse(billingPart).subscriptions[0]).toMatchObject({ id: seeded.subscriptionId, status: "active" });
      const agentPart = Bun.spawnSync(["tar", "-xzOf", "export.tar.gz", "agent.json"], { cwd: dir }).stdout.toString();
      expect(JSON.parse(agentPart).configs[0]).toMatchObject({ id: seeded.configId, name: "Notes" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const deleted = await call("auth", "DELETE", "/auth/me", user.accessToken, { password: PASSWORD });
    expect(deleted.status).toBe(202);
    expect(
      await eventually(
        () => device.closes,
        (seen) => seen.length > 0,
      ),
    ).toEqual([4403]);
    expect((await post(urlOf("auth"), "/refresh", { refresh_token: user.refreshToken })).status).toBe(401);
    expect((await call("chat", "GET", "/chat/conversations", user.accessToken)).status).toBe(401);
    expect((await call("agent", "GET", "/agents/configs", user.accessToken)).status).toBe(401);
    expect((await call("billing", "GET", "/billing/subscription", user.accessToken)).status).toBe(401);

    expect(await erasedEverywhere(user.userId)).toEqual({ "auth.deleted_users": 1 });
    expect(qdrantPoints(user.userId)).toEqual([]);
    const stripeCalls = stripe.requests.map((request) => `${request.method} ${request.path}`);
    expect(stripeCalls).toContain(`DELETE /v1/subscriptions/${seeded.subscriptionId}`);
    expect(stripeCalls).toContain(`DELETE /v1/customers/${seeded.customerId}`);
    await device.client.close();
  }, 120_000);

  test("a service down during the deletion erases when it starts again, and only then does auth finish", async () => {
    const user = await signUp();
    await seed(user);
    await stopService("agent");
    try {
      const deleted = await call("auth", "DELETE", "/auth/me", user.accessToken, { password: PASSWORD });
      expect(deleted.status).toBe(202);
      // The other services erase and report; agent's rows wait, and so does the user row.
      const reported = await eventually(
        async () =>
          (await sql`select service from auth.erasures where user_id = ${user.userId} order by 1`).map(
            (row) => row.service,
          ),
        (services) => services.length === 4,
        30_000,
        100,
      );
      expect(reported).toEqual(["billing", "chat", "plugins", "storage"]);
      const waiting = nonZero(await rowsOfUser(sql, user.userId));
      expect(waiting).toMatchObject({ "agent.agent_configs": 1, "auth.users": 1, "auth.deleted_users": 1 });
      expect(waiting["chat.conversations"]).toBeUndefined();
      expect(waiting["billing.customers"]).toBeUndefined();
      expect(waiting["plugins.developers"]).toBeUndefined();
    } finally {
      await startService("agent");
    }
    expect(await erasedEverywhere(user.userId)).toEqual({ "auth.deleted_users": 1 });
  }, 120_000);
});
