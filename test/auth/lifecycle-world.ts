// Every service in one test process, each its own instance (platform, Redis connections,
// consumers) on one database and key prefix, for the account-lifecycle tests: auth, chat (memories
// in Qdrant's REST contract through the fake), agent (an in-memory device that answers slowly, so
// runs stay running), billing (the real Stripe SDK against the fake Stripe), storage (embedded),
// plugins (a marketplace with one live plugin, published by a developer of the world's own). Users
// sign up through auth's API and hold real tokens.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { createBillingService } from "../../src/billing";
import { type ChatServiceModule, createChatService } from "../../src/chat";
import { QdrantMemoryStore } from "../../src/chat/memory/qdrant-store";
import { createPluginsService } from "../../src/plugins";
import type { RunningServer } from "../../src/shared/server";
import { createTestContext, eventually, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import { createStorageService } from "../../src/storage";
import { startAgent } from "../agent/support/agents";
import { memoryDevice } from "../agent/support/fakes";
import { billingEnv, WEBHOOK_SECRET } from "../billing/harness";
import { FakeQdrant } from "../chat/fake-qdrant";
import { keyPair, manifest, signManifest } from "../plugins/harness";
import { PASSWORD, post, randomIp, registerUser, type SessionBody, startAuth } from "./helpers";

export interface SignedIn {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
}

export const COLLECTION = "chat_memories";

/** Every table of the services' schemas with a `user_id` column, read from information_schema. */
export async function userKeyedTables(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<Array<{ table_schema: string; table_name: string }>>`
    select table_schema, table_name from information_schema.columns
    where column_name = 'user_id' and table_schema in ('auth', 'chat', 'agent', 'billing', 'storage', 'plugins')
    order by 1, 2`;
  return rows.map((row) => `${row.table_schema}.${row.table_name}`);
}

/**
 * The rows anywhere that belong to the user: each table with a `user_id`, plus the rows keyed
 * through a parent (messages, run items and events, export parts) and the user row itself.
 */
export async function rowsOfUser(sql: postgres.Sql, userId: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of await userKeyedTables(sql)) {
    const [row] = await sql.unsafe<Array<{ n: number }>>(
      `select count(*)::int as n from ${table} where user_id::text = $1`,
      [userId],
    );
    counts[table] = row?.n ?? 0;
  }
  const through = {
    "auth.users": sql`select count(*)::int as n from auth.users where id = ${userId}`,
    "chat.messages": sql`select count(*)::int as n from chat.messages m join chat.conversations c on c.id = m.conversation_id where c.user_id = ${userId}`,
    "agent.agent_run_items": sql`select count(*)::int as n from agent.agent_run_items i join agent.agent_run_logs r on r.id = i.run_id where r.user_id = ${userId}`,
  };
  for (const [name, query] of Object.entries(through)) {
    const [row] = (await query) as unknown as Array<{ n: number }>;
    counts[name] = row?.n ?? 0;
  }
  return counts;
}

/** Only the non-zero entries: what a test expects to be `{ "auth.deleted_users": 1 }` after erasure. */
export const nonZero = (counts: Record<string, number>) =>
  Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));

export async function startWorld() {
  const ctx: TestContext = await createTestContext();
  const stripe = new FakeStripe();
  stripe.start();
  ctx.defer(() => stripe.stop());
  const qdrant = new FakeQdrant();
  ctx.defer(() => qdrant.close());
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  const sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());
  const device = memoryDevice({ "/home/ada/notes/plan.txt": "TASK: plan | home", "/home/ada/notes/b.txt": "x" });
  // Each device call takes a while: a triggered run stays running long enough to be cancelled.
  device.delayMs = 1500;

  // Mails are written as files (no SMTP_URL outside production): one directory for this world.
  const mailDir = mkdtempSync(join(tmpdir(), "adiuva-lifecycle-"));
  ctx.defer(() => rmSync(mailDir, { recursive: true, force: true }));
  const auth = await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1", DATA_DIR: mailDir } });
  const chat = await ctx.start(
    [
      (platform) =>
        createChatService(platform, {
          memoryStore: new QdrantMemoryStore({ url: qdrant.url, collection: COLLECTION, dimensions: 8 }),
        }),
    ],
    { service: "chat", env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" } },
  );
  const agent = await startAgent(ctx, device, {}, {});
  const billing = await ctx.start([createBillingService], { service: "billing", env: billingEnv(stripe) });
  // Storage in embedded mode (objects under the world's directory), erasing and exporting with the others.
  const storage = await ctx.start([createStorageService], {
    service: "storage",
    env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", DATA_DIR: mailDir },
  });
  // The marketplace, with one live plugin users install and review.
  const pluginsAdmin = crypto.randomUUID();
  const plugins = await ctx.start([createPluginsService], {
    service: "plugins",
    env: { PLUGINS_ADMIN_USER_IDS: pluginsAdmin },
  });
  const chatModule = chat.modules[0] as ChatServiceModule;

  const call = async (server: RunningServer, method: string, path: string, token?: string, body?: unknown) => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {}
    // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
    return { status: response.status, body: parsed as any, headers: response.headers };
  };

  const world = {
    ctx,
    stripe,
    qdrant,
    llm,
    sql,
    device,
    auth,
    chat,
    agent,
    billing,
    storage,
    plugins,
    memoryStore: chatModule.engine.memory.store,
    /** The live plugin of the world's own developer (set once by `marketPlugin`). */
    marketPluginId: undefined as string | undefined,

    /** A plugin published by a developer who is no test's user: created on first use. */
    async marketPlugin(): Promise<string> {
      if (world.marketPluginId) return world.marketPluginId;
      const developer = crypto.randomUUID();
      const token = await ctx.token(developer, "team");
      const keys = keyPair();
      const body = manifest({ name: "Forecasts" });
      await call(plugins, "POST", "/plugins/developers/me", token, {
        display_name: "Market",
        public_key: keys.publicKey,
      });
      const created = await call(plugins, "POST", "/plugins/developers/me/plugins", token, {
        manifest: body,
        signature: signManifest(body, keys.privateKey),
      });
      if (created.status !== 201) throw new Error(`plugin failed: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.id as string;
      await call(plugins, "POST", `/plugins/developers/me/plugins/${id}/versions/1.0.0/submit`, token);
      const admin = await ctx.token(pluginsAdmin, "team");
      const approved = await call(plugins, "POST", `/plugins/admin/plugins/${id}/versions/1.0.0/approve`, admin);
      if (approved.status !== 200) throw new Error(`approve failed: ${approved.status}`);
      world.marketPluginId = id;
      return id;
    },
    call,

    async signUp(): Promise<SignedIn> {
      const registered = await registerUser(auth.url);
      return world.login(registered.user.email);
    },

    async login(email: string): Promise<SignedIn> {
      const response = await post(auth.url, "/login", { email, password: PASSWORD }, { "x-forwarded-for": randomIp() });
      if (response.status !== 200) throw new Error(`login failed: ${response.status} ${await response.text()}`);
      const session = (await response.json()) as SessionBody;
      return {
        userId: session.user.id,
        email: session.user.email,
        accessToken: session.access_token,
        refreshToken: session.refresh_token,
      };
    },

    deleteAccount: (user: SignedIn, password = PASSWORD) =>
      call(auth, "DELETE", "/auth/me", user.accessToken, { password }),

    /**
     * Something in every service: a conversation with its messages (and usage), two memories, an
     * agent configuration with a run still running, a paid subscription with its invoice.
     */
    async seed(user: SignedIn) {
      const chatted = await call(chat, "POST", "/chat", user.accessToken, { text: "remember that I like tea" });
      if (chatted.status !== 200) throw new Error(`chat failed: ${chatted.status} ${JSON.stringify(chatted.body)}`);
      const vector = (seed: number) => Array.from({ length: 8 }, (_, i) => Math.sin(seed + i));
      const memories = [
        { id: crypto.randomUUID(), text: "likes tea", vector: vector(1) },
        { id: crypto.randomUUID(), text: "lives in Turin", vector: vector(2) },
      ];
      await world.memoryStore.add(user.userId, memories);
      const config = await call(agent, "POST", "/agents/configs", user.accessToken, {
        type: "filesystem",
        name: "Notes",
        config: { path: "/home/ada/notes" },
      });
      if (config.status !== 201) throw new Error(`config failed: ${config.status} ${JSON.stringify(config.body)}`);
      const run = await call(agent, "POST", "/agents/trigger", user.accessToken, { config_id: config.body.id });
      if (run.status !== 202) throw new Error(`trigger failed: ${run.status} ${JSON.stringify(run.body)}`);
      const checkout = await call(billing, "POST", "/billing/checkout", user.accessToken, { tier: "pro" });
      if (checkout.status !== 200) throw new Error(`checkout failed: ${JSON.stringify(checkout.body)}`);
      const paid = stripe.completeCheckout(String(checkout.body.url).split("/").pop() ?? "");
      const payload = stripe.event("checkout.session.completed", paid.session);
      const hook = await fetch(`${billing.url}/api/v1/billing/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "stripe-signature": await signWebhook(payload, WEBHOOK_SECRET) },
        body: payload,
      });
      if (hook.status !== 200) throw new Error(`webhook failed: ${hook.status}`);
      // Plugins: the user installs and reviews the market's plugin, and publishes one of their own.
      const marketId = await world.marketPlugin();
      const grants = { device_tools: ["task_list"], origins: [], data: [] };
      const installed = await call(plugins, "POST", "/plugins/installs", user.accessToken, {
        plugin_id: marketId,
        grants,
      });
      if (installed.status !== 201)
        throw new Error(`install failed: ${installed.status} ${JSON.stringify(installed.body)}`);
      const review = await call(plugins, "POST", `/plugins/catalog/${marketId}/reviews`, user.accessToken, {
        rating: 4,
        text: "useful",
      });
      if (review.status !== 201) throw new Error(`review failed: ${review.status}`);
      const keys = keyPair();
      await call(plugins, "POST", "/plugins/developers/me", user.accessToken, {
        display_name: "Me",
        public_key: keys.publicKey,
      });
      const own = manifest({ name: "My own" });
      const published = await call(plugins, "POST", "/plugins/developers/me/plugins", user.accessToken, {
        manifest: own,
        signature: signManifest(own, keys.privateKey),
      });
      if (published.status !== 201) throw new Error(`own plugin failed: ${published.status}`);
      return {
        marketPluginId: marketId,
        ownPluginId: published.body.id as string,
        chatId: chatted.body.chat_id as string,
        memories,
        configId: config.body.id as string,
        runId: run.body.run_id as string,
        subscriptionId: paid.subscription.id,
        customerId: String(paid.subscription.customer),
      };
    },

    /** The mails auth has sent to an address so far (RFC 822 text, as written to files). */
    mailsTo(address: string): string[] {
      const dir = join(mailDir, "mail");
      let files: string[] = [];
      try {
        files = readdirSync(dir);
      } catch {
        return [];
      }
      return files
        .map((file) => readFileSync(join(dir, file), "utf8"))
        .filter((text) => text.includes(`To: ${address}`));
    },

    /** Memory points of the user in the fake Qdrant. */
    qdrantPoints: (userId: string) =>
      [...(qdrant.collections.get(COLLECTION)?.points.values() ?? [])].filter(
        (point) => point.payload.user_id === userId,
      ),

    /** Waits until nothing of the user is left but `auth.deleted_users`; returns the last non-zero counts. */
    erased: (userId: string, timeoutMs = 30_000) =>
      eventually(
        async () => nonZero(await rowsOfUser(sql, userId)),
        (counts) => JSON.stringify(counts) === JSON.stringify({ "auth.deleted_users": 1 }),
        timeoutMs,
        100,
      ),
  };
  return world;
}

export type World = Awaited<ReturnType<typeof startWorld>>;
