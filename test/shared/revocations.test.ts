// Session revocation as every service sees it: platforms on the same Redis (as replicas of
// different services are) and one embedded platform. The verifier of each platform is the one its
// routes and the device socket use, so refusing here is refusing everywhere.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TokenError } from "../../src/shared/auth/verifier";
import { createTestContext, eventually, type TestContext } from "../../src/shared/testing";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
const session = () => crypto.randomUUID();
const later = () => Date.now() + 60_000;

/** "ok", or the rejection reason of the platform's verifier. */
const verdict = (verify: (token: string) => Promise<unknown>, token: string) =>
  verify(token).then(
    () => "ok",
    (error: unknown) => (error instanceof TokenError ? error.reason : String(error)),
  );

describe("session revocation across processes", () => {
  test("a session revoked on one platform is refused by another at once, other sessions still pass", async () => {
    const [a, b] = [await ctx.platform(), await ctx.platform()];
    await Promise.all([a.revocations.start(), b.revocations.start()]);
    const userId = user();
    const [ended, kept] = [session(), session()];
    const endedToken = await ctx.token(userId, "pro", { sessionId: ended });
    const keptToken = await ctx.token(userId, "pro", { sessionId: kept });
    expect(await verdict(b.verifier.verify, endedToken)).toBe("ok");

    await a.revocations.revoke([ended], later());
    expect(await verdict(a.verifier.verify, endedToken)).toBe("token_revoked");
    expect(
      await eventually(
        () => verdict(b.verifier.verify, endedToken),
        (v) => v === "token_revoked",
      ),
    ).toBe("token_revoked");
    expect(await verdict(b.verifier.verify, keptToken)).toBe("ok");
  });

  test("a process that starts after the revocation refuses the session from its first request", async () => {
    const first = await ctx.platform();
    const ended = session();
    await first.revocations.revoke([ended], later());
    const started = await ctx.platform();
    expect(await verdict(started.verifier.verify, await ctx.token(user(), "free", { sessionId: ended }))).toBe(
      "token_revoked",
    );
  });

  test("a revocation lapses when the session's tokens could no longer be valid anyway", async () => {
    const platform = await ctx.platform();
    const ended = session();
    const token = await ctx.token(user(), "free", { sessionId: ended });
    await platform.revocations.revoke([ended], Date.now() + 1000);
    expect(await verdict(platform.verifier.verify, token)).toBe("token_revoked");
    await Bun.sleep(1100);
    expect(await verdict(platform.verifier.verify, token)).toBe("ok");
    expect(await verdict((await ctx.platform()).verifier.verify, token)).toBe("ok");
  });

  test("listeners hear each revocation once, their own process's included; junk on the channel is ignored", async () => {
    const [a, b] = [await ctx.platform(), await ctx.platform()];
    await Promise.all([a.revocations.start(), b.revocations.start()]);
    const heard: string[][] = [];
    b.revocations.onRevoked((ids) => heard.push(ids));
    await a.bus.publish(a.keys.sessionsRevoked, "not json");
    await a.bus.publish(a.keys.sessionsRevoked, JSON.stringify({ session_ids: "x", until: "soon" }));
    const ended = session();
    await a.revocations.revoke([ended], later());
    await b.revocations.revoke([ended], later() - 1000);
    await eventually(
      () => heard,
      (seen) => seen.length > 0,
    );
    await Bun.sleep(50);
    expect(heard).toEqual([[ended]]);
  });

  test("tokens without a session (service tokens, tests) are not affected", async () => {
    const platform = await ctx.platform();
    expect(await verdict(platform.verifier.verify, await ctx.token(user(), "free"))).toBe("ok");
  });
});

describe("session revocation in embedded mode", () => {
  test("revoking works in one process without Redis", async () => {
    const platform = await ctx.platform({ redis: false });
    const ended = session();
    const token = await ctx.token(user(), "free", { sessionId: ended });
    expect(await verdict(platform.verifier.verify, token)).toBe("ok");
    await platform.revocations.revoke([ended], later());
    expect(await verdict(platform.verifier.verify, token)).toBe("token_revoked");
  });
});
