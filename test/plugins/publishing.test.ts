// Developers and publishing over HTTP, on the real service: registering a key, creating a plugin
// from a signed manifest, new versions (immutable, strictly rising), the listing's links, the
// submission to review. Every refusal is checked with its status and code; another user's plugin is
// 404. The races run with real concurrency on separate connections, over many rounds.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createPluginsService } from "../../src/plugins";
import { keyPair, manifest, newUserId, type Plugins, signManifest, startPlugins } from "./harness";

let p: Plugins;
beforeAll(async () => {
  p = await startPlugins();
});
afterAll(() => p.ctx.close());

const codeOf = (answer: { status: number; body: { error?: { code: string } } }) => ({
  status: answer.status,
  code: answer.body?.error?.code,
});

describe("developers", () => {
  test("any user registers once with a display name and an Ed25519 key, reads and changes it", async () => {
    const token = await p.token(newUserId(), "free");
    const keys = keyPair();
    expect(codeOf(await p.call("GET", "/developers/me", { token }))).toEqual({ status: 404, code: "not_found" });
    const created = await p.call("POST", "/developers/me", {
      token,
      body: { display_name: "Ada Labs", public_key: keys.publicKey },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ display_name: "Ada Labs", public_key: keys.publicKey });
    const again = await p.call("POST", "/developers/me", {
      token,
      body: { display_name: "Ada Labs", public_key: keys.publicKey },
    });
    expect(codeOf(again)).toEqual({ status: 409, code: "already_developer" });
    const next = keyPair();
    const changed = await p.call("PUT", "/developers/me", { token, body: { public_key: next.publicKey } });
    expect(changed.body).toMatchObject({ display_name: "Ada Labs", public_key: next.publicKey });
    expect((await p.call("GET", "/developers/me", { token })).body.public_key).toBe(next.publicKey);
  });

  test("malformed registrations are 422 naming the field; no token is 401", async () => {
    const token = await p.token(newUserId());
    const bad = [
      { display_name: "Ada", public_key: "not a key" },
      { display_name: "Ada", public_key: Buffer.alloc(31).toString("base64") },
      { display_name: "", public_key: keyPair().publicKey },
      { display_name: " Ada", public_key: keyPair().publicKey },
      { display_name: "A".repeat(81), public_key: keyPair().publicKey },
      { display_name: "Ada", public_key: keyPair().publicKey, admin: true },
    ];
    for (const body of bad) {
      expect({ body, ...codeOf(await p.call("POST", "/developers/me", { token, body })) }).toEqual({
        body,
        status: 422,
        code: "validation_failed",
      });
    }
    expect(codeOf(await p.call("PUT", "/developers/me", { token, body: {} }))).toEqual({
      status: 422,
      code: "validation_failed",
    });
    const anonymous = await p.call("POST", "/developers/me", { body: bad[0] });
    expect(codeOf(anonymous)).toEqual({ status: 401, code: "unauthorized" });
  });
});

describe("creating a plugin", () => {
  test("a signed manifest makes a draft plugin owned by its developer, shown whole to them only", async () => {
    const dev = await p.developer();
    const body = manifest({ name: "Forecaster", description: "Rain or shine." });
    const created = await p.create(dev, body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      slug: body.slug,
      name: "Forecaster",
      description: "Rain or shine.",
      status: "draft",
      suspended: false,
      installs: 0,
      rating: { average: 0, count: 0 },
      version: null,
      versions: [
        {
          version: "1.0.0",
          status: "draft",
          changelog: "First release.",
          runtime: { type: "remote", endpoint: "https://mcp.example.com/mcp" },
          permissions: { device_tools: ["task_list"], origins: ["https://api.weather.example"], data: ["profile"] },
          pricing: { model: "free" },
          manifest: body,
          signing_key: dev.publicKey,
        },
      ],
    });
    const id = created.body.id as string;
    expect((await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token })).status).toBe(200);
    const mine = await p.call("GET", "/developers/me/plugins", { token: dev.token });
    expect(mine.body.items.map((item: { id: string }) => item.id)).toEqual([id]);
    // Not in the marketplace before review; another developer cannot see or change it.
    const stranger = await p.developer();
    expect((await p.call("GET", `/catalog/${id}`, { token: stranger.token })).status).toBe(404);
    expect((await p.call("GET", `/developers/me/plugins/${id}`, { token: stranger.token })).status).toBe(404);
    expect((await p.call("GET", "/developers/me/plugins", { token: stranger.token })).body.items).toEqual([]);
    const foreign = manifest({ slug: body.slug as string, version: "1.0.1" });
    expect(codeOf(await p.addVersion(stranger, id, foreign))).toEqual({ status: 404, code: "not_found" });
    expect(codeOf(await p.submit(stranger, id, "1.0.0"))).toEqual({ status: 404, code: "not_found" });
    const listing = { homepage_url: "https://evil.example", support_url: null };
    expect(
      codeOf(await p.call("PUT", `/developers/me/plugins/${id}/listing`, { token: stranger.token, body: listing })),
    ).toEqual({ status: 404, code: "not_found" });
  });

  test("a malformed manifest is 422 invalid_manifest naming the failing path", async () => {
    const dev = await p.developer();
    const body = manifest({ deviceTools: ["rm_rf"] });
    const answer = await p.create(dev, body);
    expect(codeOf(answer)).toEqual({ status: 422, code: "invalid_manifest" });
    expect(answer.body.error.details).toEqual([{ path: "permissions.deviceTools.0", message: expect.any(String) }]);
    const noTools = await p.create(dev, { ...manifest(), tools: [] });
    expect(noTools.body.error.details.map((each: { path: string }) => each.path)).toEqual(["tools"]);
  });

  test("a signature the registered key does not verify is 422 invalid_signature, and nothing is created", async () => {
    const dev = await p.developer();
    const body = manifest();
    const otherKey = signManifest(body, keyPair().privateKey);
    const tampered = signManifest({ ...body, name: "Something else" }, dev.privateKey);
    for (const signature of [otherKey, tampered, "AAAA", "x".repeat(200)]) {
      const answer = await p.call("POST", "/developers/me/plugins", {
        token: dev.token,
        body: { manifest: body, signature },
      });
      expect(codeOf(answer)).toEqual({ status: 422, code: "invalid_signature" });
    }
    expect((await p.call("GET", "/developers/me/plugins", { token: dev.token })).body.items).toEqual([]);
  });

  test("a user who is no developer is 403 developer_required", async () => {
    const token = await p.token(newUserId(), "team");
    const keys = keyPair();
    const body = manifest();
    const answer = await p.call("POST", "/developers/me/plugins", {
      token,
      body: { manifest: body, signature: signManifest(body, keys.privateKey) },
    });
    expect(codeOf(answer)).toEqual({ status: 403, code: "developer_required" });
  });

  test("a slug is one plugin's: another plugin with it is 409 slug_taken", async () => {
    const first = await p.developer();
    const second = await p.developer();
    const slug = `taken-${crypto.randomUUID().slice(0, 8)}`;
    expect((await p.create(first, manifest({ slug }))).status).toBe(201);
    expect(codeOf(await p.create(second, manifest({ slug })))).toEqual({ status: 409, code: "slug_taken" });
    expect(codeOf(await p.create(first, manifest({ slug, version: "2.0.0" })))).toEqual({
      status: 409,
      code: "slug_taken",
    });
  });

  test("in production a remote endpoint over plain http is refused", async () => {
    const dev = await p.developer();
    const local = await p.create(dev, manifest({ endpoint: "http://127.0.0.1:9/mcp" }));
    expect(local.status).toBe(201);
    const production = await p.ctx.start([createPluginsService], {
      service: "plugins",
      env: { NODE_ENV: "production" },
    });
    const body = manifest({ endpoint: "http://mcp.example.com/mcp" });
    const answer = await fetch(`${production.url}/api/v1/plugins/developers/me/plugins`, {
      method: "POST",
      headers: { authorization: `Bearer ${dev.token}`, "content-type": "application/json" },
      body: JSON.stringify({ manifest: body, signature: signManifest(body, dev.privateKey) }),
    });
    const refused = (await answer.json()) as { error: { code: string; details: Array<{ path: string }> } };
    expect({
      status: answer.status,
      code: refused.error.code,
      paths: refused.error.details.map((d) => d.path),
    }).toEqual({
      status: 422,
      code: "invalid_manifest",
      paths: ["runtime.endpoint"],
    });
  });
});

describe("versions", () => {
  test("a higher version is added; the same one is 409 version_exists, a lower one 409 version_not_increasing", async () => {
    const dev = await p.developer();
    const slug = `v-${crypto.randomUUID().slice(0, 8)}`;
    const id = (await p.create(dev, manifest({ slug, version: "1.2.0" }))).body.id as string;
    const same = await p.addVersion(dev, id, manifest({ slug, version: "1.2.0", changelog: "changed!" }));
    expect(codeOf(same)).toEqual({ status: 409, code: "version_exists" });
    for (const version of ["1.1.9", "1.2.0-rc.1", "1.2.0+build.7", "0.9.0"]) {
      expect({ version, ...codeOf(await p.addVersion(dev, id, manifest({ slug, version }))) }).toEqual({
        version,
        status: 409,
        code: "version_not_increasing",
      });
    }
    const added = await p.addVersion(dev, id, manifest({ slug, version: "1.10.0", name: "Renamed" }));
    expect(added.status).toBe(201);
    expect(added.body.versions.map((each: { version: string }) => each.version)).toEqual(["1.10.0", "1.2.0"]);
    // Nothing is live yet: the listing shows the newest version.
    expect(added.body.name).toBe("Renamed");
    // The first version is as it was: no route edits a published version.
    expect(added.body.versions[1].manifest.changelog).toBe("First release.");
    const otherSlug = await p.addVersion(dev, id, manifest({ slug: "another-slug", version: "2.0.0" }));
    expect(codeOf(otherSlug)).toEqual({ status: 422, code: "slug_mismatch" });
  });

  test("a new key signs new versions; the old key no longer does, and old versions keep theirs", async () => {
    const dev = await p.developer();
    const slug = `k-${crypto.randomUUID().slice(0, 8)}`;
    const id = (await p.create(dev, manifest({ slug }))).body.id as string;
    const next = keyPair();
    expect(
      (await p.call("PUT", "/developers/me", { token: dev.token, body: { public_key: next.publicKey } })).status,
    ).toBe(200);
    expect(codeOf(await p.addVersion(dev, id, manifest({ slug, version: "1.1.0" })))).toEqual({
      status: 422,
      code: "invalid_signature",
    });
    const rotated = { ...dev, ...next };
    const added = await p.addVersion(rotated, id, manifest({ slug, version: "1.1.0" }));
    expect(added.body.versions.map((each: { signing_key: string }) => each.signing_key)).toEqual([
      next.publicKey,
      dev.publicKey,
    ]);
  });

  test("the listing's links are edited without a new version; bad URLs are 422", async () => {
    const dev = await p.developer();
    const id = (await p.create(dev, manifest())).body.id as string;
    const path = `/developers/me/plugins/${id}/listing`;
    const edited = await p.call("PUT", path, {
      token: dev.token,
      body: { homepage_url: "https://weather.example", support_url: "https://weather.example/help" },
    });
    expect(edited.body).toMatchObject({ homepage_url: "https://weather.example", versions: [{ version: "1.0.0" }] });
    for (const body of [
      { homepage_url: "javascript:alert(1)", support_url: null },
      { homepage_url: "http://weather.example", support_url: null },
      { homepage_url: null },
    ]) {
      expect(codeOf(await p.call("PUT", path, { token: dev.token, body }))).toEqual({
        status: 422,
        code: "validation_failed",
      });
    }
  });

  test("submitting: a draft goes to review once; unknown versions 404, malformed ones 422", async () => {
    const dev = await p.developer();
    const id = (await p.create(dev, manifest())).body.id as string;
    const submitted = await p.submit(dev, id, "1.0.0");
    expect(submitted.body).toMatchObject({ status: "in_review", versions: [{ status: "in_review" }] });
    expect(codeOf(await p.submit(dev, id, "1.0.0"))).toEqual({ status: 409, code: "invalid_state" });
    expect(codeOf(await p.submit(dev, id, "3.0.0"))).toEqual({ status: 404, code: "not_found" });
    expect(codeOf(await p.submit(dev, id, "latest"))).toEqual({ status: 422, code: "validation_failed" });
  });
});

describe("races", () => {
  const ROUNDS = 40;

  test(`two concurrent publishes of the same version: exactly one 201 and one 409, ${ROUNDS} rounds`, async () => {
    const dev = await p.developer();
    const slug = `race-${crypto.randomUUID().slice(0, 8)}`;
    const id = (await p.create(dev, manifest({ slug }))).body.id as string;
    const outcomes: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const body = manifest({ slug, version: `1.${round}.0`, changelog: `round ${round}` });
      const answers = await Promise.all([p.addVersion(dev, id, body), p.addVersion(dev, id, body)]);
      outcomes.push(
        answers
          .map((answer) => `${answer.status}${answer.body.error ? ` ${answer.body.error.code}` : ""}`)
          .sort()
          .join(", "),
      );
    }
    expect(outcomes).toEqual(Array(ROUNDS).fill("201, 409 version_exists"));
    const versions = (await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token })).body.versions;
    expect(versions).toHaveLength(ROUNDS + 1);
  }, 60_000);

  test(`two concurrent versions that would both rise past the last: one 201, one 409, ${ROUNDS} rounds`, async () => {
    const dev = await p.developer();
    const slug = `rise-${crypto.randomUUID().slice(0, 8)}`;
    const id = (await p.create(dev, manifest({ slug }))).body.id as string;
    for (let round = 1; round <= ROUNDS; round++) {
      // 1.r.1 and 1.r.2 both follow 1.(r-1).x; whichever lands second must still rise past the first.
      const answers = await Promise.all([
        p.addVersion(dev, id, manifest({ slug, version: `1.${round}.2` })),
        p.addVersion(dev, id, manifest({ slug, version: `1.${round}.1` })),
      ]);
      const statuses = answers.map((answer) => answer.status).sort();
      if (statuses.join(",") === "201,201") {
        // Both may win only in order: 1.r.1 first, then 1.r.2.
        const listed = (await p.call("GET", `/developers/me/plugins/${id}`, { token: dev.token })).body.versions;
        expect(listed[0].version).toBe(`1.${round}.2`);
      } else {
        expect(statuses).toEqual([201, 409]);
        expect(answers.find((answer) => answer.status === 409)?.body.error.code).toBe("version_not_increasing");
      }
    }
  }, 60_000);

  test(`two developers creating the same slug at once: one 201, one 409 slug_taken, ${ROUNDS} rounds`, async () => {
    const [first, second] = await Promise.all([p.developer(), p.developer()]);
    for (let round = 0; round < ROUNDS; round++) {
      const slug = `same-${crypto.randomUUID().slice(0, 8)}`;
      const answers = await Promise.all([p.create(first, manifest({ slug })), p.create(second, manifest({ slug }))]);
      expect(answers.map((answer) => `${answer.status} ${answer.body.error?.code ?? ""}`.trim()).sort()).toEqual([
        "201",
        "409 slug_taken",
      ]);
    }
  }, 60_000);
});
