// The rotation procedure of docs/key-rotation.md, step by step, with auth restarted on the same
// database under each configuration, and a JWKS-URL verifier standing in for another service.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { decodeProtectedHeader } from "jose";
import { generateRsaPemPair } from "../../src/shared/auth/keygen";
import { createTokenVerifier, keySourceFromEnv } from "../../src/shared/auth/verifier";
import { createTestContext, TEST_TOKEN_POLICY, type TestContext, testKeys } from "../../src/shared/testing";
import { get, PASSWORD, post, registerUser, type SessionBody, startAuth } from "./helpers";

let ctx: TestContext;
let current: Awaited<ReturnType<typeof testKeys>>;
const next = { privateKeyFile: "", publicKeyFile: "" };
beforeAll(async () => {
  ctx = await createTestContext();
  current = await testKeys();
  const pair = await generateRsaPemPair();
  next.privateKeyFile = `${current.dir}/next_private.pem`;
  next.publicKeyFile = `${current.dir}/next_public.pem`;
  writeFileSync(next.privateKeyFile, pair.privatePem);
  writeFileSync(next.publicKeyFile, pair.publicPem);
});
afterAll(() => ctx.close());

const kidsOf = async (base: string) =>
  ((await (await get(base, "/.well-known/jwks.json")).json()) as { keys: Array<{ kid: string }> }).keys.map(
    (key) => key.kid,
  );
const signIn = async (base: string, email: string) =>
  (await (
    await post(base, "/login", { email, password: PASSWORD }, { "x-forwarded-for": "10.0.0.1" })
  ).json()) as SessionBody;

test("publish next, switch, retire: old tokens live through the switch and die with their key", async () => {
  // 1. Publish the next key beside the current one; tokens are still signed with the current key.
  const staged = await startAuth(ctx, {
    env: { JWT_PRIVATE_KEY_FILE: current.privateKeyFile, JWT_EXTRA_PUBLIC_KEY_FILES: next.publicKeyFile },
  });
  const session = await registerUser(staged.url);
  const oldToken = session.access_token;
  const oldKid = decodeProtectedHeader(oldToken).kid!;
  expect(oldKid).toBe(current.kid);
  const kids = await kidsOf(staged.url);
  expect(kids).toHaveLength(2);
  expect(kids[0]).toBe(current.kid);
  const nextKid = kids[1]!;
  // Another service fetches the JWKS once, while both keys are published.
  const remote = createTokenVerifier({
    source: { kind: "jwks-url", url: `${staged.url}/api/v1/auth/.well-known/jwks.json` },
    ...TEST_TOKEN_POLICY,
  });
  expect((await remote.verify(oldToken)).userId).toBe(session.user.id);
  await staged.stop();

  // 2. Switch: sign with the next key, keep the previous one published for the access-token lifetime.
  const switched = await startAuth(ctx, {
    env: { JWT_PRIVATE_KEY_FILE: next.privateKeyFile, JWT_EXTRA_PUBLIC_KEY_FILES: current.publicKeyFile },
  });
  const fresh = await signIn(switched.url, session.user.email);
  expect(decodeProtectedHeader(fresh.access_token).kid).toBe(nextKid);
  expect(await kidsOf(switched.url)).toEqual([nextKid, oldKid]);
  expect((await get(switched.url, "/me", oldToken)).status).toBe(200);
  // The other service already knows the new key from step 1: no refetch, no failure.
  expect((await remote.verify(fresh.access_token)).userId).toBe(session.user.id);
  await switched.stop();

  // 3. Retire: the old key leaves the set, and tokens signed with it are refused.
  const retired = await startAuth(ctx, { env: { JWT_PRIVATE_KEY_FILE: next.privateKeyFile } });
  expect(await kidsOf(retired.url)).toEqual([nextKid]);
  expect((await get(retired.url, "/me", oldToken)).status).toBe(401);
  expect((await get(retired.url, "/me", fresh.access_token)).status).toBe(200);
  // Refresh tokens are opaque and survive rotation; the new access token carries the new kid.
  const refreshed = (await (
    await post(retired.url, "/refresh", { refresh_token: fresh.refresh_token })
  ).json()) as SessionBody;
  expect(decodeProtectedHeader(refreshed.access_token).kid).toBe(nextKid);
});

test("services verifying with mounted PEMs accept the extra keys too", async () => {
  const source = keySourceFromEnv({
    JWT_PUBLIC_KEY_FILE: current.publicKeyFile,
    JWT_EXTRA_PUBLIC_KEY_FILES: next.publicKeyFile,
  });
  const verifier = createTokenVerifier({ source: source!, ...TEST_TOKEN_POLICY });
  const retired = await startAuth(ctx, { env: { JWT_PRIVATE_KEY_FILE: next.privateKeyFile } });
  const session = await registerUser(retired.url);
  expect((await verifier.verify(session.access_token)).userId).toBe(session.user.id);
  expect((await verifier.verify(await ctx.token("u1"))).userId).toBe("u1");
  const onlyCurrent = createTokenVerifier({
    source: keySourceFromEnv({ JWT_PUBLIC_KEY_FILE: current.publicKeyFile })!,
    ...TEST_TOKEN_POLICY,
  });
  await expect(onlyCurrent.verify(session.access_token)).rejects.toMatchObject({ reason: "token_unknown_key" });
});

test("auth alone may run with nothing but its private key", () => {
  expect(keySourceFromEnv({ JWT_PRIVATE_KEY_FILE: current.privateKeyFile })?.kind).toBe("pem");
  expect(keySourceFromEnv({})).toBeUndefined();
});
