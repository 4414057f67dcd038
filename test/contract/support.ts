// The whole stack in one process (`SERVICE_NAME=all`), as the contract tests see it: real
// PostgreSQL and Redis, the fake Stripe behind the real SDK and the fake OpenAI-compatible server
// behind the real provider code, so every route runs its real code and answers with real data.
import { serviceFactories } from "../../src/services";
import type { ServiceName } from "../../src/shared/env";
import { createTestContext, startFakeOpenAi, type TestContext } from "../../src/shared/testing";
import { FakeStripe } from "../../src/shared/testing/fake-stripe";
import { billingEnv } from "../billing/harness";

export interface Stack {
  ctx: TestContext;
  url: string;
  routes: Array<{ method: string; path: string }>;
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const ctx = await createTestContext();
  const stripe = new FakeStripe();
  stripe.start();
  ctx.defer(() => stripe.stop());
  const llm = startFakeOpenAi();
  ctx.defer(() => llm.close());
  llm.onStructured(() => ({ json: { facts: [] } }));
  const server = await ctx.start(Object.values(serviceFactories), {
    env: { ...billingEnv(stripe), LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test" },
  });
  const routes = (server.app.routes as Array<{ method: string; path: string }>).map(({ method, path }) => ({
    method,
    path,
  }));
  return { ctx, url: server.url, routes, close: () => ctx.close() };
}

/** One service alone, as its own executable runs it (or `all`): its URL and where its docs live. */
export async function startService(ctx: TestContext, name: ServiceName | "all") {
  const factories = name === "all" ? Object.values(serviceFactories) : [serviceFactories[name]];
  const server = await ctx.start(factories, { service: name });
  return { url: server.url, docs: name === "all" ? "/docs" : `${server.modules[0]?.prefix}/docs` };
}

/** A new account through the real register route: its access token and user id. */
export async function register(url: string): Promise<{ token: string; userId: string; email: string }> {
  const email = `u-${crypto.randomUUID()}@example.com`;
  const response = await fetch(`${url}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "a long and unusual passphrase 7" }),
  });
  if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`);
  const session = (await response.json()) as { access_token: string; user: { id: string } };
  return { token: session.access_token, userId: session.user.id, email };
}
