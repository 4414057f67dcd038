// Strategy: every service as a separate in-process instance (lifecycle-world.ts); a user puts
// data into every service through their APIs, asks for an export, and the archive downloaded
// through the API is unpacked with the system's `tar` and compared with what was created.
// States that take hours (timed out, expired) are set up by moving the row's times back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishExportPart, publishExportRequested } from "../../src/shared/events/user-export";
import { silentLogger } from "../../src/shared/logger";
import { createTestContext, eventually } from "../../src/shared/testing";
import { startUserDataConsumers } from "../../src/shared/user-data";
import { registerUser, startAuth } from "./helpers";
import { type SignedIn, startWorld, type World } from "./lifecycle-world";

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.ctx.close();
});

const requestExport = (user: SignedIn) => world.call(world.auth, "POST", "/auth/me/export", user.accessToken);
const exportStatus = (user: SignedIn, id: string) =>
  world.call(world.auth, "GET", `/auth/me/exports/${id}`, user.accessToken);
const download = (user: SignedIn | undefined, id: string) =>
  fetch(`${world.auth.url}/api/v1/auth/me/exports/${id}/download`, {
    headers: user ? { authorization: `Bearer ${user.accessToken}` } : {},
  });
/** Waits (reading the table: polling the API would spend the user's requests per minute) until the export is no longer pending, then asks the API. */
async function untilSettled(user: SignedIn, id: string) {
  await eventually(
    async () => (await world.sql`select status from auth.exports where id = ${id}`)[0]?.status,
    (status) => status !== "pending",
    30_000,
    50,
  );
  return exportStatus(user, id);
}

/** Unpacks a .tar.gz with the system's tar; returns each file's text by name. */
function unpack(bytes: Uint8Array): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "adiuva-export-"));
  try {
    writeFileSync(join(dir, "archive.tar.gz"), bytes);
    const result = Bun.spawnSync(["tar", "-xzf", "archive.tar.gz"], { cwd: dir });
    if (result.exitCode !== 0) throw new Error(`tar failed: ${result.stderr.toString()}`);
    const files: Record<string, string> = {};
    for (const name of readdirSync(dir))
      if (name !== "archive.tar.gz") files[name] = readFileSync(join(dir, name), "utf8");
    return files;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha256 = (data: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

describe("POST /auth/me/export", () => {
  test("one archive with every service's part, matching what the user created; a mail with the link", async () => {
    const user = await world.signUp();
    const seeded = await world.seed(user);
    const asked = await requestExport(user);
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ status: "pending", ready_at: null, expires_at: null, error: null });

    const ready = await untilSettled(user, asked.body.id);
    expect(ready.body).toMatchObject({ id: asked.body.id, status: "ready", error: null });
    const hours = (Date.parse(ready.body.expires_at) - Date.parse(ready.body.ready_at)) / 3600_000;
    expect(hours).toBe(24);

    const response = await download(user, asked.body.id);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/gzip");
    expect(response.headers.get("content-disposition")).toMatch(
      /^attachment; filename="adiuva-export-\d{4}-\d{2}-\d{2}\.tar\.gz"$/,
    );
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(response.headers.get("x-content-sha256")).toBe(sha256(bytes));
    const files = unpack(bytes);
    expect(Object.keys(files).sort()).toEqual([
      "agent.json",
      "auth.json",
      "billing.json",
      "chat.json",
      "manifest.json",
      "plugins.json",
      "storage.json",
    ]);

    const manifest = JSON.parse(files["manifest.json"]!);
    expect(manifest).toMatchObject({ format: "adiuva-export/1", export_id: asked.body.id, user_id: user.userId });
    for (const entry of manifest.files) expect(entry.sha256).toBe(sha256(files[entry.name]!));

    const chat = JSON.parse(files["chat.json"]!);
    expect(chat.conversations).toHaveLength(1);
    expect(chat.conversations[0]).toMatchObject({ id: seeded.chatId });
    expect(chat.conversations[0].messages.map((message: { role: string }) => message.role)).toEqual([
      "user",
      "assistant",
    ]);
    expect(JSON.stringify(chat.conversations[0].messages[0].parts)).toContain("remember that I like tea");
    expect(chat.memories.map((memory: { text: string }) => memory.text).sort()).toEqual([
      "likes tea",
      "lives in Turin",
    ]);

    const agent = JSON.parse(files["agent.json"]!);
    expect(agent.configs).toEqual([
      expect.objectContaining({ id: seeded.configId, type: "filesystem", name: "Notes", config: expect.any(Object) }),
    ]);
    expect(agent.runs).toEqual([expect.objectContaining({ id: seeded.runId, config_id: seeded.configId })]);

    const billing = JSON.parse(files["billing.json"]!);
    expect(billing).toMatchObject({ tier: "pro", stripe_customer_id: seeded.customerId });
    expect(billing.subscriptions).toEqual([
      expect.objectContaining({ id: seeded.subscriptionId, status: "active", tier: "pro" }),
    ]);
    expect(billing.invoices).toEqual([expect.objectContaining({ status: "paid", amount_paid: 1900, currency: "eur" })]);

    const plugins = JSON.parse(files["plugins.json"]!);
    expect(plugins.developer).toMatchObject({ display_name: "Me", public_key: expect.any(String) });
    expect(plugins.plugins).toEqual([
      expect.objectContaining({ id: seeded.ownPluginId, name: "My own", status: "draft" }),
    ]);
    expect(plugins.plugins[0].versions).toEqual([
      expect.objectContaining({ version: "1.0.0", status: "draft", signature: expect.any(String) }),
    ]);
    expect(plugins.installs).toEqual([
      expect.objectContaining({
        plugin_id: seeded.marketPluginId,
        version: "1.0.0",
        grants: { device_tools: ["task_list"], origins: [], data: [] },
      }),
    ]);
    expect(plugins.reviews).toEqual([
      expect.objectContaining({ plugin_id: seeded.marketPluginId, rating: 4, text: "useful" }),
    ]);

    const auth = JSON.parse(files["auth.json"]!);
    expect(auth.profile).toMatchObject({ id: user.userId, email: user.email, tier: expect.any(String) });
    expect(auth.sessions.length).toBeGreaterThanOrEqual(2); // register and login

    const mails = await eventually(
      () => world.mailsTo(user.email).filter((mail) => mail.includes("Your Adiuva data export is ready")),
      (found) => found.length > 0,
    );
    // Quoted-printable wraps long lines with a soft break (`=` at the end of the line).
    expect(mails[0]?.replaceAll("=\r\n", "")).toContain(`/api/v1/auth/me/exports/${asked.body.id}/download`);
    // The parts are not kept once the archive is made.
    const [parts] =
      await world.sql`select count(*)::int as n from auth.export_parts where export_id = ${asked.body.id}`;
    expect(parts?.n).toBe(0);
  });

  test("one pending export at a time: asking again gives the pending one back", async () => {
    const user = await world.signUp();
    const [row] = await world.sql`insert into auth.exports (user_id) values (${user.userId}) returning id`;
    const again = await requestExport(user);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(row?.id);
    expect((await untilSettled(user, row?.id)).body.status).toBe("ready");
    const next = await requestExport(user);
    expect(next.body.id).not.toBe(row?.id);
  });

  test("owner only: another user's export is 404, without a token 401, a malformed id 422", async () => {
    const [ada, bob] = [await world.signUp(), await world.signUp()];
    const asked = await requestExport(ada);
    expect((await exportStatus(bob, asked.body.id)).status).toBe(404);
    expect((await download(bob, asked.body.id)).status).toBe(404);
    expect((await download(undefined, asked.body.id)).status).toBe(401);
    expect((await world.call(world.auth, "POST", "/auth/me/export")).status).toBe(401);
    expect((await world.call(world.auth, "GET", `/auth/me/exports/${asked.body.id}`)).status).toBe(401);
    expect((await exportStatus(ada, "not-an-id")).status).toBe(422);
    expect((await exportStatus(ada, crypto.randomUUID())).status).toBe(404);
    expect((await untilSettled(ada, asked.body.id)).body.status).toBe("ready");
  });

  test("not ready yet: download is 409 export_not_ready", async () => {
    const user = await world.signUp();
    const [row] = await world.sql`insert into auth.exports (user_id) values (${user.userId}) returning id`;
    const early = await download(user, row?.id);
    expect({ status: early.status, code: ((await early.json()) as { error: { code: string } }).error.code }).toEqual({
      status: 409,
      code: "export_not_ready",
    });
  });

  test("past its 24 h: status expired, download 410, and the sweeper deletes the archive bytes", async () => {
    const user = await world.signUp();
    const asked = await requestExport(user);
    expect((await untilSettled(user, asked.body.id)).body.status).toBe("ready");
    await world.sql`update auth.exports set ready_at = now() - interval '25 hours', expires_at = now() - interval '1 hour' where id = ${asked.body.id}`;
    expect((await exportStatus(user, asked.body.id)).body.status).toBe("expired");
    const gone = await download(user, asked.body.id);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe("export_expired");
    const swept = await eventually(
      async () =>
        (await world.sql`select status, archive is null as empty from auth.exports where id = ${asked.body.id}`)[0],
      (row) => row?.empty === true,
      10_000,
      100,
    );
    expect(swept).toEqual({ status: "expired", empty: true });
  });

  test("a part that cannot be sent fails the export with its reason; one pending too long times out", async () => {
    const user = await world.signUp();
    const [failing] = await world.sql`insert into auth.exports (user_id) values (${user.userId}) returning id`;
    await publishExportPart(world.auth.platform, {
      exportId: failing?.id,
      userId: user.userId,
      service: "chat",
      error: { code: "part_too_large", message: "the chat part is 60000000 bytes, over 52428800" },
    });
    const failed = await untilSettled(user, failing?.id);
    expect(failed.body).toMatchObject({ status: "failed", error: { code: "part_too_large" } });
    expect((await download(user, failing?.id)).status).toBe(409);

    const [stale] =
      await world.sql`insert into auth.exports (user_id, requested_at) values (${user.userId}, now() - interval '2 hours') returning id`;
    const timedOut = await untilSettled(user, stale?.id);
    expect(timedOut.body).toMatchObject({ status: "failed", error: { code: "export_timed_out" } });
  });

  test("rate-limited: the sixth request in an hour is 429", async () => {
    const user = await world.signUp();
    for (let i = 0; i < 5; i++) expect((await requestExport(user)).status).toBe(202);
    const refused = await requestExport(user);
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 429, code: "rate_limited" });
    expect(refused.headers.get("ratelimit-policy")).toContain('"auth-export";q=5;w=3600');
  });
});

describe("a service's part", () => {
  test("larger than EXPORT_PART_MAX_BYTES is sent as an error, never as data", async () => {
    await using ctx = await createTestContext();
    const platform = await ctx.platform({ service: "chat", env: { EXPORT_PART_MAX_BYTES: "1000" } });
    const consumers = await startUserDataConsumers(platform, silentLogger(), {
      service: "chat",
      export: async (userId) => ({ userId, text: "x".repeat(2000) }),
    });
    try {
      const exportId = crypto.randomUUID();
      await publishExportRequested(platform, { exportId, userId: crypto.randomUUID(), requestedAt: Date.now() });
      const entries = await eventually(
        async () => (await platform.redis?.xrange(platform.keys.exportPartsStream, "-", "+")) ?? [],
        (found) => found.length > 0,
      );
      const part = JSON.parse(entries[0]?.[1][1] ?? "null");
      expect(part).toMatchObject({ exportId, service: "chat", error: { code: "part_too_large" } });
      expect(part.json).toBeUndefined();
    } finally {
      await consumers.stop();
    }
  });
});

describe("concurrent requests for an export", () => {
  test("never make two pending exports: 200 rounds of 5 requests at once all get the same one", async () => {
    // Auth alone: no other service answers, so every export stays pending through the round.
    await using ctx = await createTestContext();
    const auth = await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } });
    const rounds = Number(process.env.EXPORT_RACE_ROUNDS ?? 200);
    const mismatches: string[] = [];
    for (let round = 0; round < rounds; round++) {
      const user = await registerUser(auth.url);
      const answers = await Promise.all(
        Array.from({ length: 5 }, () =>
          fetch(`${auth.url}/api/v1/auth/me/export`, {
            method: "POST",
            headers: { authorization: `Bearer ${user.access_token}` },
          }).then(async (response) => ({
            status: response.status,
            id: ((await response.json()) as { id: string }).id,
          })),
        ),
      );
      const ids = new Set(answers.map((answer) => answer.id));
      if (ids.size !== 1 || answers.some((answer) => answer.status !== 202)) mismatches.push(JSON.stringify(answers));
    }
    expect(mismatches).toEqual([]);
    const sql = (await import("postgres")).default(ctx.databaseUrl, { max: 1 });
    try {
      const [most] =
        await sql`select max(n)::int as n from (select count(*) as n from auth.exports group by user_id) per_user`;
      expect(most?.n).toBe(1);
    } finally {
      await sql.end();
    }
  }, 300_000);
});
