// Installs over HTTP: grants recorded exactly, tiers and prices enforced, uninstall, the upgrade of
// installs when a new version goes live (at once when it asks for nothing new, after the user's
// consent when it asks for more), and the announcements on the real Redis bus. The races run with
// real concurrency: one user installing one plugin many times at once, and many users installing
// and uninstalling at once while the count must stay exact.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { installs, pluginRows } from "../../src/plugins/tables";
import { eventually } from "../../src/shared/testing";
import { type Developer, manifest, newUserId, type Plugins, startPlugins } from "./harness";

let p: Plugins;
let dev: Developer;
beforeAll(async () => {
  p = await startPlugins();
  dev = await p.developer();
});
afterAll(() => p.ctx.close());

const codeOf = (answer: { status: number; body: { error?: { code: string } } }) => ({
  status: answer.status,
  code: answer.body?.error?.code,
});

async function listen(userId: string) {
  const heard: Array<Record<string, unknown>> = [];
  const { bus, keys } = p.server.platform;
  const stop = await bus.subscribe(keys.pluginsChanged(userId), (message) => heard.push(JSON.parse(message)));
  p.ctx.defer(stop);
  return heard;
}

const asks = {
  deviceTools: ["task_list", "task_create"],
  origins: ["https://api.weather.example", "https://tiles.weather.example"],
  data: ["profile", "documents"],
};

const installCount = async (id: string) =>
  (await p.server.platform.db.select().from(pluginRows).where(eq(pluginRows.id, id)))[0]?.installCount;

describe("installing", () => {
  test("records exactly what the user granted, a subset of what the version asks; announced to the user's chat", async () => {
    const id = await p.publishLive(dev, manifest(asks));
    const userId = newUserId();
    const token = await p.token(userId);
    const heard = await listen(userId);
    const grants = { device_tools: ["task_list"], origins: [], data: ["documents", "documents"] };
    const installed = await p.install(token, id, grants);
    expect(installed.status).toBe(201);
    expect(installed.body).toMatchObject({
      plugin_id: id,
      version: "1.0.0",
      grants: { device_tools: ["task_list"], origins: [], data: ["documents"] },
      available: true,
      upgrade: null,
    });
    const [row] = await p.server.platform.db.select().from(installs).where(eq(installs.userId, userId));
    expect(row).toMatchObject({
      grantedDeviceTools: ["task_list"],
      grantedOrigins: [],
      grantedData: ["documents"],
      tier: "free",
      entitlementId: null,
    });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([{ userId, pluginId: id, reason: "installed" }]);
    expect(await installCount(id)).toBe(1);
    expect((await p.call("GET", "/installs", { token })).body.items).toEqual([installed.body]);
    expect(codeOf(await p.install(token, id, grants))).toEqual({ status: 409, code: "already_installed" });
    // Another user sees none of it.
    expect((await p.call("GET", "/installs", { token: await p.token(newUserId()) })).body.items).toEqual([]);
  });

  test("a grant of anything the version does not ask for is 422 naming it, and nothing is installed", async () => {
    const id = await p.publishLive(dev, manifest(asks));
    const token = await p.token(newUserId());
    const answer = await p.install(token, id, {
      device_tools: ["task_list", "fs_read_file"],
      origins: ["https://evil.example"],
      data: [],
    });
    expect(codeOf(answer)).toEqual({ status: 422, code: "permission_not_requested" });
    expect(answer.body.error.details.map((each: { path: string }) => each.path)).toEqual([
      "grants.device_tools.1",
      "grants.origins.0",
    ]);
    expect((await p.call("GET", "/installs", { token })).body.items).toEqual([]);
    for (const body of [
      { plugin_id: id },
      { plugin_id: id, grants: { device_tools: [] } },
      { plugin_id: "not-a-uuid", grants: p.allGrants },
      { plugin_id: id, grants: p.allGrants, version: "0.1.0" },
    ]) {
      expect(codeOf(await p.call("POST", "/installs", { token, body }))).toEqual({
        status: 422,
        code: "validation_failed",
      });
    }
  });

  test("a tier the version does not list is 403 tier_not_supported; a listed one installs", async () => {
    const id = await p.publishLive(dev, manifest({ tiers: ["power", "team"] }));
    for (const tier of ["free", "pro"] as const) {
      expect(codeOf(await p.install(await p.token(newUserId(), tier), id))).toEqual({
        status: 403,
        code: "tier_not_supported",
      });
    }
    expect((await p.install(await p.token(newUserId(), "power"), id)).status).toBe(201);
    expect(await installCount(id)).toBe(1);
  });

  test("availability is judged for the token's tier: a pro-only install is unavailable to the same user on free, and says why", async () => {
    const id = await p.publishLive(dev, manifest({ tiers: ["pro", "power"] }));
    const userId = newUserId();
    const pro = await p.token(userId, "pro");
    expect((await p.install(pro, id)).body).toMatchObject({ available: true, unavailable_reason: null });
    const onFree = (await p.call("GET", "/installs", { token: await p.token(userId, "free") })).body.items;
    expect(onFree).toEqual([
      expect.objectContaining({
        plugin_id: id,
        available: false,
        unavailable_reason: {
          code: "tier_not_supported",
          message: "the installed version is for the pro, power tier(s), not for free",
        },
      }),
    ]);
    // Still installed, grants kept: back on a listed tier it is available again.
    const onPower = (await p.call("GET", "/installs", { token: await p.token(userId, "power") })).body.items;
    expect(onPower).toEqual([expect.objectContaining({ available: true, unavailable_reason: null })]);
    // A suspension says so, whatever the tier.
    const admin = await p.adminToken();
    await p.call("POST", `/admin/plugins/${id}/suspend`, { token: admin, body: { reason: "checking" } });
    expect((await p.call("GET", "/installs", { token: pro })).body.items[0]).toMatchObject({
      available: false,
      unavailable_reason: { code: "suspended" },
    });
  });

  test("a paid plugin without a purchase is 402 payment_required naming the checkout route, one-off or monthly", async () => {
    for (const pricing of [
      { model: "one_off", amount: 999, currency: "eur" },
      { model: "monthly", amount: 299, currency: "usd" },
    ]) {
      const id = await p.publishLive(dev, manifest({ pricing }));
      const page = await p.call("GET", `/catalog/${id}`, { token: dev.token });
      expect(page.body.pricing).toEqual(pricing);
      const refused = await p.install(await p.token(newUserId(), "team"), id);
      expect(codeOf(refused)).toEqual({ status: 402, code: "payment_required" });
      expect(refused.body.error.message).toContain("POST /api/v1/plugins/checkout");
      expect(await installCount(id)).toBe(0);
    }
  });

  test("only a published, unsuspended plugin installs; unknown ones 404", async () => {
    const token = await p.token(newUserId());
    const draft = (await p.create(dev, manifest())).body.id as string;
    expect(codeOf(await p.install(token, draft))).toEqual({ status: 404, code: "not_found" });
    expect(codeOf(await p.install(token, crypto.randomUUID()))).toEqual({ status: 404, code: "not_found" });
  });

  test("uninstalling removes it and lowers the count; twice is 404; announced", async () => {
    const id = await p.publishLive(dev, manifest());
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, id);
    const heard = await listen(userId);
    const removed = await p.call("DELETE", `/installs/${id}`, { token });
    expect(removed.status).toBe(204);
    expect(await installCount(id)).toBe(0);
    expect(codeOf(await p.call("DELETE", `/installs/${id}`, { token }))).toEqual({ status: 404, code: "not_found" });
    expect(codeOf(await p.call("DELETE", "/installs/nope", { token }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([{ userId, pluginId: id, reason: "uninstalled" }]);
  });
});

describe("new versions", () => {
  test("asking for the same or less: installs move at once, grants narrowed to what it still asks", async () => {
    const body = manifest(asks);
    const id = await p.publishLive(dev, body);
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, id, { device_tools: ["task_list", "task_create"], origins: [], data: ["profile"] });
    const heard = await listen(userId);
    await p.releaseVersion(
      dev,
      id,
      manifest({
        slug: body.slug as string,
        version: "1.1.0",
        deviceTools: ["task_list"],
        origins: [],
        data: ["profile"],
      }),
    );
    const [install] = (await p.call("GET", "/installs", { token })).body.items;
    expect(install).toMatchObject({
      version: "1.1.0",
      grants: { device_tools: ["task_list"], origins: [], data: ["profile"] },
      upgrade: null,
    });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([{ userId, pluginId: id, reason: "upgraded" }]);
  });

  test("asking for more: the install stays, still usable, until the user accepts through the upgrade route", async () => {
    const body = manifest({ deviceTools: ["task_list"], origins: [], data: [] });
    const id = await p.publishLive(dev, body);
    const userId = newUserId();
    const token = await p.token(userId);
    await p.install(token, id, { device_tools: ["task_list"], origins: [], data: [] });
    const heard = await listen(userId);
    await p.releaseVersion(
      dev,
      id,
      manifest({
        slug: body.slug as string,
        version: "2.0.0",
        deviceTools: ["task_list", "fs_read_file"],
        origins: [],
        data: [],
      }),
    );
    const [waiting] = (await p.call("GET", "/installs", { token })).body.items;
    expect(waiting).toMatchObject({
      version: "1.0.0",
      available: true,
      grants: { device_tools: ["task_list"], origins: [], data: [] },
      upgrade: {
        version: "2.0.0",
        needs_consent: true,
        permissions: { device_tools: ["task_list", "fs_read_file"], origins: [], data: [] },
        new_permissions: { device_tools: ["fs_read_file"], origins: [], data: [] },
      },
    });
    expect(heard).toEqual([]);
    // Accepting part of it is allowed; granting what it does not ask is not.
    const path = `/installs/${id}/upgrade`;
    expect(
      codeOf(
        await p.call("POST", path, {
          token,
          body: { grants: { device_tools: ["note_search"], origins: [], data: [] } },
        }),
      ),
    ).toEqual({ status: 422, code: "permission_not_requested" });
    const upgraded = await p.call("POST", path, {
      token,
      body: { grants: { device_tools: ["task_list", "fs_read_file"], origins: [], data: [] } },
    });
    expect(upgraded.body).toMatchObject({
      version: "2.0.0",
      grants: { device_tools: ["task_list", "fs_read_file"] },
      upgrade: null,
    });
    expect(
      await eventually(
        () => heard,
        (seen) => seen.length > 0,
      ),
    ).toEqual([{ userId, pluginId: id, reason: "upgraded" }]);
    expect(codeOf(await p.call("POST", path, { token, body: { grants: p.allGrants } }))).toEqual({
      status: 409,
      code: "already_current",
    });
    const stranger = await p.token(newUserId());
    expect(codeOf(await p.call("POST", path, { token: stranger, body: { grants: p.allGrants } }))).toEqual({
      status: 404,
      code: "not_found",
    });
  });

  test("a version dropping the user's tier or turning paid leaves installs where they are", async () => {
    const body = manifest();
    const id = await p.publishLive(dev, body);
    const freeUser = await p.token(newUserId(), "free");
    const teamUser = await p.token(newUserId(), "team");
    await p.install(freeUser, id);
    await p.install(teamUser, id);
    await p.releaseVersion(dev, id, manifest({ slug: body.slug as string, version: "1.1.0", tiers: ["team"] }));
    expect((await p.call("GET", "/installs", { token: freeUser })).body.items[0].version).toBe("1.0.0");
    expect((await p.call("GET", "/installs", { token: teamUser })).body.items[0].version).toBe("1.1.0");
    expect(
      codeOf(await p.call("POST", `/installs/${id}/upgrade`, { token: freeUser, body: { grants: p.allGrants } })),
    ).toEqual({
      status: 403,
      code: "tier_not_supported",
    });
    await p.releaseVersion(
      dev,
      id,
      manifest({
        slug: body.slug as string,
        version: "1.2.0",
        tiers: ["team"],
        pricing: { model: "monthly", amount: 100, currency: "eur" },
      }),
    );
    expect((await p.call("GET", "/installs", { token: teamUser })).body.items[0]).toMatchObject({
      version: "1.1.0",
      available: true,
      upgrade: { version: "1.2.0", needs_consent: false },
    });
    expect(
      codeOf(await p.call("POST", `/installs/${id}/upgrade`, { token: teamUser, body: { grants: p.allGrants } })),
    ).toEqual({
      status: 402,
      code: "payment_required",
    });
  });
});

describe("races", () => {
  test("one user installing one plugin 20 times at once: one install, one 201, the count 1; 30 rounds", async () => {
    const id = await p.publishLive(dev, manifest());
    for (let round = 0; round < 30; round++) {
      const token = await p.token(newUserId(), "team");
      const answers = await Promise.all(Array.from({ length: 20 }, () => p.install(token, id)));
      const statuses = answers.map((answer) => answer.status);
      expect(statuses.filter((status) => status === 201)).toHaveLength(1);
      expect(statuses.filter((status) => status === 409)).toHaveLength(19);
    }
    expect(await installCount(id)).toBe(30);
    const rows = await p.server.platform.db.select().from(installs).where(eq(installs.pluginId, id));
    expect(rows).toHaveLength(30);
  }, 60_000);

  test("installs and uninstalls by many users at once, with an approval in the middle: the count stays exact; 10 rounds", async () => {
    for (let round = 0; round < 10; round++) await installChurn();
  }, 60_000);

  async function installChurn() {
    const body = manifest();
    const id = await p.publishLive(dev, body);
    const users = await Promise.all(Array.from({ length: 40 }, async () => p.token(newUserId(), "team")));
    // The first half is installed already; at once, the first half uninstalls, the second installs,
    // the first ten install again, and a new version goes live.
    await Promise.all(users.slice(0, 20).map((token) => p.install(token, id)));
    await p.addVersion(dev, id, manifest({ slug: body.slug as string, version: "1.1.0" }));
    await p.submit(dev, id, "1.1.0");
    const [uninstalls, installsDone, reinstalls, approval] = await Promise.all([
      Promise.all(users.slice(0, 20).map((token) => p.call("DELETE", `/installs/${id}`, { token }))),
      Promise.all(users.slice(20).map((token) => p.install(token, id))),
      Promise.all(users.slice(0, 10).map((token) => p.install(token, id))),
      p.approve(id, "1.1.0"),
    ]);
    expect(approval.status).toBe(200);
    expect(installsDone.every((answer) => answer.status === 201)).toBe(true);
    const rows = await p.server.platform.db.select().from(installs).where(eq(installs.pluginId, id));
    expect(await installCount(id)).toBe(rows.length);
    // Nobody was left on the old version: every install asked for nothing new, so all follow.
    expect(new Set(rows.map((row) => row.versionId)).size).toBe(1);
    // A reinstall either came after its user's uninstall (201, the row is back) or before it (409,
    // then the uninstall removed the row): the second half plus the reinstalls that won.
    expect(rows.length).toBe(20 + reinstalls.filter((answer) => answer.status === 201).length);
    expect(uninstalls.every((answer) => answer.status === 204)).toBe(true);
  }
});
