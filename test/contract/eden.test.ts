// Eden Treaty against the real stack: `treaty<App>` with the exported type only checks paths,
// bodies and responses at compile time (this file is part of `bun run typecheck`, so each
// `@ts-expect-error` below fails the typecheck if the mistake it marks ever compiles), and its
// calls run against the real services.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { treaty } from "@elysiajs/eden";
import type { App } from "../../src/api";
import type { App as AuthApp } from "../../src/auth";
import { type Stack, startStack } from "./support";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
}, 60_000);
afterAll(() => stack.close());

test("a typed client registers, signs in and reads what each service serves", async () => {
  const api = treaty<App>(stack.url).api.v1;
  const email = `eden-${crypto.randomUUID()}@example.com`;
  const registered = await api.auth.register.post({ email, password: "a long and unusual passphrase 7" });
  expect(registered.status).toBe(201);
  if (!registered.data) throw new Error("no session");
  const user: { id: string; email: string; tier: "free" | "pro" | "power" | "team" } = registered.data.user;
  expect(user.email).toBe(email);

  const signedIn = treaty<App>(stack.url, {
    headers: { authorization: `Bearer ${registered.data.access_token}` },
  }).api.v1;
  const me = await signedIn.auth.me.get();
  expect(me.data?.id).toBe(user.id);
  const conversations = await signedIn.chat.conversations.get({ query: { limit: 5 } });
  const items: Array<{ id: string; title: string }> | undefined = conversations.data?.items;
  expect(items).toEqual([]);
  const configs = await signedIn.agents.configs.get();
  expect(configs.data?.configs).toEqual([]);
  const runs = await signedIn.agents.runs.get({ query: { limit: 5 } });
  expect(runs.data).toEqual({ runs: [], next_before: null });
  const subscription = await signedIn.billing.subscription.get();
  expect(subscription.data?.tier).toBe("free");

  // Errors are typed too: the shared error shape.
  const missing = await signedIn.agents.configs({ id: crypto.randomUUID() }).get();
  expect(missing.status).toBe(404);
  expect(missing.error?.value).toMatchObject({ error: { code: "not_found" } });
});

test("a misspelt path or a wrong body does not compile", async () => {
  const auth = treaty<AuthApp>(stack.url).api.v1;
  // @ts-expect-error `authh` is no service
  const typo = () => treaty<App>(stack.url).api.v1.authh.me.get();
  // @ts-expect-error `password` is required and `mail` is not a field
  const wrongBody = () => auth.auth.login.post({ mail: "x@example.com" });
  // @ts-expect-error the auth service alone has no chat routes
  const otherService = () => auth.chat.conversations.get();
  // At run time the typo is a request to a path that does not exist.
  expect((await typo()).status).toBe(404);
  expect((await wrongBody()).status).toBe(422);
  expect(typeof otherService).toBe("function");
});
