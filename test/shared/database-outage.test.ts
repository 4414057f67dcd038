// PostgreSQL going away under running services. Strategy: auth and chat reach PostgreSQL through a
// TcpProxy the test controls; cutting it drops every connection and every new one is accepted and
// closed at once, which is what a restarting server (or a proxy in front of a dead one) looks like
// to the driver. Requests must fail fast with 503 and recover without a restart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createAuthService } from "../../src/auth";
import { createChatService } from "../../src/chat";
import { createTestContext, eventually, TcpProxy, type TestContext, viaProxy } from "../../src/shared/testing";
import { FAST_HASH, PASSWORD, randomIp, registerUser } from "../auth/helpers";

const WAIT_MS = 1000;
/** Slack over the configured wait for the answer to travel (and a loaded machine). */
const ANSWER_WITHIN_MS = WAIT_MS + 1500;

let ctx: TestContext;
let base: string;
const pgProxy = new TcpProxy("127.0.0.1", 5432);

beforeAll(async () => {
  ctx = await createTestContext();
  pgProxy.start();
  const server = await ctx.start([createAuthService, (platform) => createChatService(platform)], {
    env: {
      ...FAST_HASH,
      TRUSTED_PROXY_HOPS: "1",
      DATABASE_URL: viaProxy(ctx.databaseUrl, pgProxy.port),
      DATABASE_WAIT_MS: String(WAIT_MS),
    },
  });
  base = server.url;
});
afterAll(async () => {
  await ctx.close();
  pgProxy.stop();
});

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
  ms: number;
}

async function timed(request: () => Promise<Response>): Promise<Answer> {
  const started = performance.now();
  const response = await request();
  const body = (await response.json().catch(() => ({}))) as { error?: { code?: string } };
  return {
    status: response.status,
    code: body.error?.code,
    retryAfter: response.headers.get("retry-after"),
    ms: performance.now() - started,
  };
}

describe("PostgreSQL outage", () => {
  test("reads, writes and transactions answer 503 database_unavailable quickly, then recover", async () => {
    const user = await registerUser(base);
    const bearer = { authorization: `Bearer ${user.access_token}` };
    const conversations = () => fetch(`${base}/api/v1/chat/conversations`, { headers: bearer });
    const rename = () =>
      fetch(`${base}/api/v1/auth/me`, {
        method: "PUT",
        headers: { ...bearer, "content-type": "application/json" },
        body: JSON.stringify({ display_name: "renamed" }),
      });
    const login = () =>
      fetch(`${base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": randomIp() },
        body: JSON.stringify({ email: user.user.email, password: PASSWORD }),
      });
    expect((await timed(conversations)).status).toBe(200);

    pgProxy.cut();
    const answers: Answer[] = [];
    const outageStarted = Date.now();
    while (Date.now() - outageStarted < 3 * WAIT_MS) {
      answers.push(...(await Promise.all([timed(conversations), timed(rename), timed(login)])));
    }
    pgProxy.resume();

    expect(answers.length).toBeGreaterThanOrEqual(6);
    for (const answer of answers) {
      expect({ status: answer.status, code: answer.code, retryAfter: answer.retryAfter }).toEqual({
        status: 503,
        code: "database_unavailable",
        retryAfter: "2",
      });
      expect(answer.ms).toBeLessThan(ANSWER_WITHIN_MS);
    }

    const back = await eventually(
      async () => [(await timed(conversations)).status, (await timed(rename)).status, (await timed(login)).status],
      (statuses) => statuses.every((status) => status === 200),
    );
    expect(back).toEqual([200, 200, 200]);
  }, 30_000);
});
