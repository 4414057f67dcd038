// The tier-change path across services: auth, billing and chat run as separate instances (each its
// own platform, Redis connections and consumers) on one database and one Redis key prefix, as
// replicas would in production. Stripe is the in-memory fake API, spoken to by the real SDK, with
// webhooks signed by the SDK's test helper; the LLM is the fake OpenAI server; devices are SDK
// DeviceClients on the real WebSocket.
import { decodeJwt } from "jose";
import postgres from "postgres";
import { createBillingService } from "../../src/billing";
import { type DeviceClient, type DeviceClientEvents, ToolFailure } from "../../src/client";
import { TierChangedEvent } from "../../src/shared/events/tier-changed";
import type { RunningServer } from "../../src/shared/server";
import { createTestContext, eventually, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import { FakeStripe, signWebhook } from "../../src/shared/testing/fake-stripe";
import type { Tier } from "../../src/shared/tiers";
import { get, PASSWORD, post, randomIp, registerUser, type SessionBody, startAuth } from "../auth/helpers";
import { billingEnv, WEBHOOK_SECRET } from "../billing/harness";
import { connectDevice, startChat } from "../chat/gateway/helpers";

type Session = DeviceClientEvents["session"];

/** A user signed up and logged in through auth's HTTP API, holding real tokens. */
export interface SignedIn {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
}

export async function startStack() {
  const ctx: TestContext = await createTestContext();
  const stripe = new FakeStripe();
  stripe.start();
  ctx.defer(() => stripe.stop());
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  const sql = postgres(ctx.databaseUrl, { max: 2, onnotice: () => {} });
  ctx.defer(() => sql.end());

  // Each client is seen from its own address, so per-IP login limits never couple tests.
  const startAuthInstance = () => startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } });
  let auth: RunningServer | undefined = await startAuthInstance();
  // A restarted auth applies and announces the changes waiting for it before its server is listening:
  // a device told of one then refreshes as soon as the restart is done, as it would against a real
  // address. A refresh while auth is simply stopped still fails at once.
  let restarting: Promise<RunningServer> | undefined;
  const billing = await ctx.start([createBillingService], { service: "billing", env: billingEnv(stripe) });
  const chat = await startChat(ctx, { env: { LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" } });

  const authUrl = () => {
    if (!auth) throw new Error("auth is stopped");
    return auth.url;
  };

  const billingCall = async (method: string, path: string, token?: string, body?: unknown) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${billing.url}/api/v1/billing${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
    return { status: response.status, body: (await response.json()) as any };
  };

  const stack = {
    ctx,
    stripe,
    billing,
    chat,
    sql,
    get authUrl() {
      return authUrl();
    },

    async stopAuth() {
      await auth?.stop();
      auth = undefined;
    },
    async restartAuth() {
      restarting = startAuthInstance();
      try {
        auth = await restarting;
      } finally {
        restarting = undefined;
      }
    },

    /** Registers, then logs in: the session a freshly installed app would hold. */
    async signUp(): Promise<SignedIn> {
      const registered = await registerUser(authUrl());
      return stack.login(registered.user.email);
    },

    /** Another session of the same user (another app install), with its own refresh-token family. */
    async login(email: string): Promise<SignedIn> {
      const response = await post(
        authUrl(),
        "/login",
        { email, password: PASSWORD },
        { "x-forwarded-for": randomIp() },
      );
      if (response.status !== 200) throw new Error(`login failed: ${response.status} ${await response.text()}`);
      const session = (await response.json()) as SessionBody;
      return {
        userId: session.user.id,
        email: session.user.email,
        accessToken: session.access_token,
        refreshToken: session.refresh_token,
      };
    },

    refresh: async (refreshToken: string) => {
      await restarting;
      return post(authUrl(), "/refresh", { refresh_token: refreshToken });
    },

    async me(accessToken: string): Promise<{ status: number; tier?: Tier }> {
      const response = await get(authUrl(), "/me", accessToken);
      const body = (await response.json()) as { tier?: Tier };
      return { status: response.status, tier: body.tier };
    },

    /** users.tier straight from auth's table: readable while auth is stopped. */
    async tierInAuth(userId: string): Promise<Tier | undefined> {
      const [row] = await sql<Array<{ tier: Tier }>>`select tier from auth.users where id = ${userId}`;
      return row?.tier;
    },

    /**
     * The user's device on chat, acting as the app does on a `session` frame: refresh at once and
     * hand the new access token to the open socket. `refreshes` holds each outcome: the new token's
     * tier, or the HTTP status of a refused refresh.
     */
    async device(session: SignedIn) {
      const sessions: Session[] = [];
      const refreshes: Array<Tier | number> = [];
      const closes: Array<{ code: number; reason: string }> = [];
      const current = { ...session };
      const client: DeviceClient = await connectDevice(ctx, {
        url: chat.wsUrl,
        userId: session.userId,
        token: () => current.accessToken,
        tools: {
          task_list: () => {
            throw new ToolFailure("not_used", "no tools in these tests");
          },
        },
      });
      client.on("session", async (frame) => {
        sessions.push(frame);
        const response = await stack.refresh(current.refreshToken).catch(() => undefined);
        if (response?.status !== 200) {
          refreshes.push(response?.status ?? 0);
          return;
        }
        const body = (await response.json()) as SessionBody;
        current.accessToken = body.access_token;
        current.refreshToken = body.refresh_token;
        refreshes.push(tierClaim(body.access_token));
        await client.renewToken();
      });
      client.on("close", ({ code, reason }) => closes.push({ code, reason }));
      return { client, sessions, refreshes, closes };
    },

    billingCall,

    async webhook(payload: string) {
      const response = await fetch(`${billing.url}/api/v1/billing/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "stripe-signature": await signWebhook(payload, WEBHOOK_SECRET) },
        body: payload,
      });
      return { status: response.status, body: (await response.json()) as { received?: boolean; outcome?: string } };
    },

    /** Checkout through billing's API, then what Stripe does once the customer pays. */
    async checkoutAndPay(user: SignedIn, tier: Exclude<Tier, "free">) {
      const checkout = await billingCall("POST", "/checkout", user.accessToken, { tier });
      if (checkout.status !== 200) throw new Error(`checkout failed: ${JSON.stringify(checkout.body)}`);
      const sessionId = String(checkout.body.url).split("/").pop() ?? "";
      return stripe.completeCheckout(sessionId);
    },

    /** The user's tier changes on the durable stream, read with XRANGE. */
    async streamEvents(userId: string): Promise<TierChangedEvent[]> {
      const entries = await billing.platform.redis?.xrange(billing.platform.keys.tierChangedStream, "-", "+");
      return (entries ?? [])
        .map(([, fields]) => TierChangedEvent.parse(JSON.parse(fields[1] ?? "null")))
        .filter((event) => event.userId === userId);
    },

    /** Tier changes billing committed but has not yet moved to the stream. */
    async outboxRows(): Promise<number> {
      const [row] = await sql<Array<{ n: number }>>`select count(*)::int as n from billing.outbox`;
      return row?.n ?? 0;
    },

    /**
     * True once billing's outbox is empty and auth's consumer group has read and acknowledged
     * every entry on the stream: nothing that is committed can still change auth's state.
     */
    async settled(): Promise<boolean> {
      if ((await stack.outboxRows()) > 0) return false;
      const redis = billing.platform.redis;
      if (!redis) throw new Error("the stack runs on Redis");
      const stream = billing.platform.keys.tierChangedStream;
      const [last] = await redis.xrevrange(stream, "+", "-", "COUNT", 1);
      const groups = (await redis.call("XINFO", "GROUPS", stream)) as unknown[][];
      const group = groups.map(fieldsOf).find((fields) => fields.name === "auth");
      return group !== undefined && group.pending === 0 && group["last-delivered-id"] === last?.[0];
    },

    /** Waits until auth holds `tier` for the user; returns the last tier seen. */
    tierBecomes: (userId: string, tier: Tier) =>
      eventually(
        () => stack.tierInAuth(userId),
        (value) => value === tier,
      ),
  };
  return stack;
}

export type Stack = Awaited<ReturnType<typeof startStack>>;

/** The `tier` claim of an access token. */
export const tierClaim = (accessToken: string) => decodeJwt(accessToken).tier as Tier;

/** The access token of a refresh response. */
export const accessTokenOf = async (response: Response) => ((await response.json()) as SessionBody).access_token;

function fieldsOf(flat: unknown[]): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (let i = 0; i < flat.length - 1; i += 2) fields[String(flat[i])] = flat[i + 1];
  return fields;
}
