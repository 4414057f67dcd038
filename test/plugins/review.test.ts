// The review flow and the admin role over HTTP: admins are the user ids PLUGINS_ADMIN_USER_IDS
// names, every admin route refuses everyone else with 403 admin_required. A version moves draft →
// in_review → published or rejected; only published, unsuspended plugins reach the marketplace;
// suspension is reversible and announced to every installer on the real Redis bus.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadEnv } from "../../src/shared/env";
import { eventually } from "../../src/shared/testing";
import { manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
beforeAll(async () => {
  p = await startPlugins();
});
afterAll(() => p.ctx.close());

const codeOf = (answer: { status: number; body: { error?: { code: string } } }) => ({
  status: answer.status,
  code: answer.body?.error?.code,
});

/** Every message published on a user's plugins-changed channel, as a chat instance would hear it. */
async function listen(userId: string) {
  const heard: Array<Record<string, unknown>> = [];
  const { bus, keys } = p.server.platform;
  const stop = await bus.subscribe(keys.pluginsChanged(userId), (message) => heard.push(JSON.parse(message)));
  p.ctx.defer(stop);
  return heard;
}

describe("who is an admin", () => {
  test("every admin route refuses a developer and an ordinary user with 403 admin_required", async () => {
    const dev = await p.developer();
    const body = manifest();
    const id = (await p.create(dev, body)).body.id as string;
    expect((await p.submit(dev, id, "1.0.0")).status).toBe(200);
    const routes: Array<[string, string, unknown?]> = [
      ["GET", "/admin/review-queue"],
      ["POST", `/admin/plugins/${id}/versions/1.0.0/approve`],
      ["POST", `/admin/plugins/${id}/versions/1.0.0/reject`, { reason: "no" }],
      ["POST", `/admin/plugins/${id}/suspend`, { reason: "no" }],
      ["POST", `/admin/plugins/${id}/unsuspend`],
      ["GET", "/admin/reported-reviews"],
      ["DELETE", `/admin/reviews/${crypto.randomUUID()}`],
    ];
    for (const token of [dev.token, await p.token(newUserId(), "team")]) {
      for (const [method, path, payload] of routes) {
        expect({ path, ...codeOf(await p.call(method, path, { token, body: payload })) }).toEqual({
          path,
          status: 403,
          code: "admin_required",
        });
      }
    }
    // Nothing changed: the version still waits.
    const own = await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token });
    expect(own.body).toMatchObject({ status: "in_review", suspended: false });
  });

  test("PLUGINS_ADMIN_USER_IDS takes comma-separated user ids, and refuses anything else at start", () => {
    const base = { SERVICE_NAME: "plugins" };
    const a = crypto.randomUUID();
    const b = crypto.randomUUID().toUpperCase();
    expect(loadEnv({ ...base, PLUGINS_ADMIN_USER_IDS: ` ${a} ,${b},` }).PLUGINS_ADMIN_USER_IDS).toEqual([
      a,
      b.toLowerCase(),
    ]);
    expect(loadEnv(base).PLUGINS_ADMIN_USER_IDS).toEqual([]);
    expect(() => loadEnv({ ...base, PLUGINS_ADMIN_USER_IDS: "root" })).toThrow("PLUGINS_ADMIN_USER_IDS");
  });
});

describe("draft → in review → published", () => {
  test("the queue shows submitted versions with their manifests; approval puts the plugin on the marketplace", async () => {
    const dev = await p.developer();
    const body = manifest({ name: "Queued" });
    const id = (await p.create(dev, body)).body.id as string;
    const admin = await p.adminToken();
    const user = await p.token(newUserId());
    // A draft is not in the queue, and cannot be approved.
    const queued = async () =>
      (
        (await p.call("GET", "/admin/review-queue?limit=100", { token: admin })).body.items as Array<{
          plugin_id: string;
        }>
      ).filter((item) => item.plugin_id === id);
    expect(await queued()).toEqual([]);
    expect(codeOf(await p.approve(id, "1.0.0"))).toEqual({ status: 409, code: "invalid_state" });

    await p.submit(dev, id, "1.0.0");
    expect(await queued()).toEqual([
      expect.objectContaining({
        slug: body.slug,
        developer: { user_id: dev.userId, display_name: "Example Labs" },
        version: expect.objectContaining({ version: "1.0.0", status: "in_review", manifest: body }),
      }),
    ]);
    expect((await p.call("GET", `/catalog/${id}`, { token: user })).status).toBe(404);

    const approved = await p.approve(id, "1.0.0");
    expect(approved.body).toMatchObject({ status: "published", version: "1.0.0" });
    expect(await queued()).toEqual([]);
    const page = await p.call("GET", `/catalog/${id}`, { token: user });
    expect(page.body).toMatchObject({ name: "Queued", status: "published", version: "1.0.0" });
    expect(codeOf(await p.approve(id, "1.0.0"))).toEqual({ status: 409, code: "invalid_state" });
    expect(codeOf(await p.approve(id, "9.9.9"))).toEqual({ status: 404, code: "not_found" });
    expect(codeOf(await p.approve(crypto.randomUUID(), "1.0.0"))).toEqual({ status: 404, code: "not_found" });
  });

  test("the queue pages oldest first with a cursor; a malformed cursor is 422", async () => {
    const admin = await p.adminToken();
    const dev = await p.developer();
    for (let i = 0; i < 3; i++) {
      const id = (await p.create(dev, manifest())).body.id as string;
      await p.submit(dev, id, "1.0.0");
    }
    const all = (await p.call("GET", "/admin/review-queue?limit=100", { token: admin })).body.items as unknown[];
    const seen: unknown[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const page = await p.call("GET", `/admin/review-queue${query}`, { token: admin });
      seen.push(...page.body.items);
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all);
    // Not base64 of anything, base64 of junk, and a cursor of another order (the reviews').
    const otherOrder = Buffer.from(`reviews|2026-01-01T00:00:00.000Z|${crypto.randomUUID()}`).toString("base64url");
    for (const bad of ["!!!", "bm90LWEtY3Vyc29y", otherOrder]) {
      expect(codeOf(await p.call("GET", `/admin/review-queue?cursor=${bad}`, { token: admin }))).toEqual({
        status: 422,
        code: "invalid_cursor",
      });
    }
  });

  test("a rejected version says why to its developer only, and stays out of the marketplace", async () => {
    const dev = await p.developer();
    const id = (await p.create(dev, manifest())).body.id as string;
    await p.submit(dev, id, "1.0.0");
    const admin = await p.adminToken();
    expect(
      codeOf(await p.call("POST", `/admin/plugins/${id}/versions/1.0.0/reject`, { token: admin, body: {} })),
    ).toEqual({ status: 422, code: "validation_failed" });
    const rejected = await p.call("POST", `/admin/plugins/${id}/versions/1.0.0/reject`, {
      token: admin,
      body: { reason: "The alerts tool reads contacts it does not declare." },
    });
    expect(rejected.body).toMatchObject({
      status: "draft",
      versions: [{ status: "rejected", review_note: "The alerts tool reads contacts it does not declare." }],
    });
    const own = await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token });
    expect(own.body.versions[0].review_note).toBe("The alerts tool reads contacts it does not declare.");
    expect(codeOf(await p.submit(dev, id, "1.0.0"))).toEqual({ status: 409, code: "invalid_state" });
    expect((await p.call("GET", `/catalog/${id}`, { token: await p.token(newUserId()) })).status).toBe(404);
  });

  test("a published plugin stays live on its version while a newer one waits; the public never sees drafts", async () => {
    const dev = await p.developer();
    const body = manifest({ name: "Live" });
    const id = await p.publishLive(dev, body);
    const next = manifest({ slug: body.slug as string, version: "1.1.0", name: "Next" });
    await p.addVersion(dev, id, next);
    await p.submit(dev, id, "1.1.0");
    const user = await p.token(newUserId());
    const page = await p.call("GET", `/catalog/${id}`, { token: user });
    expect(page.body).toMatchObject({ name: "Live", status: "published", version: "1.0.0" });
    expect(page.body.versions.map((each: { version: string }) => each.version)).toEqual(["1.0.0"]);
    expect(page.body.versions[0].review_note).toBeNull();
    await p.approve(id, "1.1.0");
    const after = await p.call("GET", `/catalog/${id}`, { token: user });
    expect(after.body).toMatchObject({ name: "Next", version: "1.1.0" });
    expect(after.body.versions.map((each: { version: string }) => each.version)).toEqual(["1.1.0", "1.0.0"]);
  });

  test("approving an older version after a newer one publishes it without making it live", async () => {
    const dev = await p.developer();
    const body = manifest();
    const id = (await p.create(dev, body)).body.id as string;
    await p.addVersion(dev, id, manifest({ slug: body.slug as string, version: "1.1.0" }));
    await p.submit(dev, id, "1.0.0");
    await p.submit(dev, id, "1.1.0");
    await p.approve(id, "1.1.0");
    const approved = await p.approve(id, "1.0.0");
    expect(approved.body).toMatchObject({ status: "published", version: "1.1.0" });
    expect(approved.body.versions.map((each: { status: string }) => each.status)).toEqual(["published", "published"]);
  });
});

describe("suspension", () => {
  test("takes a plugin out of the marketplace and installs, tells every installer, and is lifted as it was", async () => {
    const dev = await p.developer();
    const body = manifest({ name: "Suspicious tides" });
    const id = await p.publishLive(dev, body);
    const userId = newUserId();
    const user = await p.token(userId);
    expect((await p.install(user, id)).status).toBe(201);
    const heard = await listen(userId);
    const admin = await p.adminToken();
    const suspended = await p.call("POST", `/admin/plugins/${id}/suspend`, {
      token: admin,
      body: { reason: "Exfiltrates files" },
    });
    expect(suspended.body).toMatchObject({ suspended: true, suspension: { reason: "Exfiltrates files" } });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([{ userId, pluginId: id, reason: "suspended" }]);
    const other = await p.token(newUserId());
    expect((await p.call("GET", `/catalog/${id}`, { token: other })).status).toBe(404);
    const search = await p.call("GET", "/catalog?q=tides", { token: other });
    expect(search.body.items).toEqual([]);
    expect(codeOf(await p.install(other, id))).toEqual({ status: 404, code: "not_found" });
    const installs = await p.call("GET", "/installs", { token: user });
    expect(installs.body.items).toEqual([expect.objectContaining({ plugin_id: id, available: false })]);
    // Its developer still sees it, with the reason.
    const own = await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token });
    expect(own.body.suspension).toEqual({ at: expect.any(String), reason: "Exfiltrates files" });
    expect(
      codeOf(await p.call("POST", `/admin/plugins/${id}/suspend`, { token: admin, body: { reason: "again" } })),
    ).toEqual({ status: 409, code: "already_suspended" });

    const lifted = await p.call("POST", `/admin/plugins/${id}/unsuspend`, { token: admin });
    expect(lifted.body).toMatchObject({ suspended: false, suspension: null, status: "published" });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 1,
      ),
    ).toEqual([
      { userId, pluginId: id, reason: "suspended" },
      { userId, pluginId: id, reason: "unsuspended" },
    ]);
    expect((await p.call("GET", `/catalog/${id}`, { token: other })).body.installs).toBe(1);
    expect((await p.call("GET", "/installs", { token: user })).body.items[0].available).toBe(true);
    expect(codeOf(await p.call("POST", `/admin/plugins/${id}/unsuspend`, { token: admin }))).toEqual({
      status: 409,
      code: "not_suspended",
    });
    expect(
      codeOf(
        await p.call("POST", `/admin/plugins/${crypto.randomUUID()}/suspend`, { token: admin, body: { reason: "x" } }),
      ),
    ).toEqual({ status: 404, code: "not_found" });
  });
});
