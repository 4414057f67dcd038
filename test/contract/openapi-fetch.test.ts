// A client generated from the `all` document as a client author would: openapi-typescript's Node
// API writes the types, a small program calls register, login, conversations, configs, runs and
// subscription through openapi-fetch, `tsc --noEmit` type-checks it (responses included) and Bun
// runs it against the real stack. The generated files go to test/fixtures/generated/ (ignored by git).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, rmSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";
import { type Stack, startStack } from "./support";

const dir = `test/fixtures/generated/openapi-fetch-${crypto.randomUUID()}`;
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  mkdirSync(dir, { recursive: true });
}, 60_000);
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await stack.close();
});

const PROGRAM = `import createClient from "openapi-fetch";
import type { components, paths } from "./api";

type User = components["schemas"]["User"];
type ErrorBody = components["schemas"]["Error"];

const baseUrl = process.env.API_URL ?? "";
const email = \`fetch-\${crypto.randomUUID()}@example.com\`;
const password = "a long and unusual passphrase 7";
const anonymous = createClient<paths>({ baseUrl });

const registered = await anonymous.POST("/api/v1/auth/register", { body: { email, password } });
if (!registered.data) throw new Error("register failed");
const login = await anonymous.POST("/api/v1/auth/login", { body: { email, password } });
if (!login.data) throw new Error("login failed");
const user: User = login.data.user;
const token: string = login.data.access_token;
const refused = await anonymous.POST("/api/v1/auth/login", { body: { email, password: "wrong" } });
const refusal: ErrorBody | undefined = refused.error;

const api = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${token}\` } });
const conversations = await api.GET("/api/v1/chat/conversations", { params: { query: { limit: 10 } } });
const titles: string[] | undefined = conversations.data?.items.map((item) => item.title);
const created = await api.POST("/api/v1/agents/configs", {
  body: { type: "filesystem", config: { path: "/home/ada/notes" } },
});
const configs = await api.GET("/api/v1/agents/configs");
const runs = await api.GET("/api/v1/agents/runs", { params: { query: { limit: 10 } } });
const statuses: string[] | undefined = runs.data?.runs.map((run) => run.status);
const subscription = await api.GET("/api/v1/billing/subscription");
const tier: "free" | "pro" | "power" | "team" | undefined = subscription.data?.tier;

// @ts-expect-error no such path
await api.GET("/api/v1/chat/conversationz");

console.log(
  JSON.stringify({
    user: user.email === email,
    refusal: refusal?.error.code,
    titles,
    created: created.response.status,
    createdError: created.error?.error.code ?? null,
    configs: configs.data?.configs.length,
    statuses,
    tier,
  }),
);
`;

test("openapi-typescript + openapi-fetch: a generated client type-checks and works", async () => {
  const documentResponse = await fetch(`${stack.url}/docs/json`);
  const document = await documentResponse.json();
  const types = astToString(await openapiTS(document as never));
  await Bun.write(`${dir}/api.d.ts`, types);
  // Every operation declares its responses (a document without them generates `responses: never`).
  const operations = types.slice(types.indexOf("export interface operations"));
  expect(operations.match(/responses: never/g) ?? []).toEqual([]);
  await Bun.write(`${dir}/program.ts`, PROGRAM);
  const tsc = Bun.spawnSync(
    [
      "bunx",
      "tsc",
      "--noEmit",
      "--strict",
      "--skipLibCheck",
      "--target",
      "es2023",
      "--module",
      "preserve",
      "--moduleResolution",
      "bundler",
      "--types",
      "bun",
      `${dir}/program.ts`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  expect(tsc.stdout.toString() + tsc.stderr.toString()).toBe("");
  expect(tsc.exitCode).toBe(0);

  // Asynchronous: the services answering it run in this process.
  const run = Bun.spawn(["bun", `${dir}/program.ts`], {
    env: { ...process.env, API_URL: stack.url },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()]);
  expect(await run.exited).toBe(0);
  expect(stderr).toBe("");
  expect(JSON.parse(stdout)).toEqual({
    user: true,
    refusal: "invalid_credentials",
    titles: [],
    created: 201,
    createdError: null,
    configs: 1,
    statuses: [],
    tier: "free",
  });
}, 60_000);
