// Catalog, can-create and configuration CRUD over HTTP on a real server, PostgreSQL and Redis.
// The device and the model are not involved (in-memory stand-ins satisfy the service's ports).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createAgentService } from "../../src/agent";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { memoryDevice, mockModels } from "./support/fakes";
import { type Api, api, expectUnauthenticated } from "./support/http";

let ctx: TestContext;
let base: string;
let ada: Api;
let bob: Api;
const fsConfig = { path: "/home/ada/notes" };

beforeAll(async () => {
  ctx = await createTestContext();
  const device = memoryDevice();
  const server = await ctx.start([
    (platform) => createAgentService(platform, { rpc: device.rpc, push: device.push, models: mockModels() }),
  ]);
  base = server.url;
  ada = api(base, await ctx.token("ada", "pro"));
  bob = api(base, await ctx.token("bob", "pro"));
});
afterAll(() => ctx.close());

describe("GET /catalog", () => {
  test("lists every agent type with its JSON schema and availability for the caller's tier", async () => {
    const freeUser = api(base, await ctx.token("carol", "free"));
    const { status, body } = await freeUser("GET", "/catalog");
    expect(status).toBe(200);
    const types = body.agents.map((each: { type: string }) => each.type);
    expect(types).toEqual(["filesystem", "task_batch", "note_batch", "project_batch", "timeline_batch"]);
    const filesystem = body.agents[0];
    expect(filesystem).toMatchObject({ kind: "local", min_tier: "free", available: true });
    expect(filesystem.config_schema.type).toBe("object");
    expect(filesystem.config_schema.required).toEqual(["path"]);
    expect(Object.keys(filesystem.config_schema.properties)).toContain("max_file_bytes");
    expect(body.agents.find((each: { type: string }) => each.type === "timeline_batch")).toMatchObject({
      kind: "cloud",
      min_tier: "power",
      available: false,
    });
  });

  test("needs a token", () => expectUnauthenticated(ada, "GET", "/catalog"));
});

describe("POST /can-create", () => {
  test("reports limit and use, then the reason once the limit is reached", async () => {
    const free = api(base, await ctx.token("dave", "free"));
    expect((await free("POST", "/can-create", { type: "filesystem" })).body).toEqual({
      allowed: true,
      limit: 1,
      used: 0,
    });
    expect((await free("POST", "/configs", { type: "filesystem", config: fsConfig })).status).toBe(201);
    expect((await free("POST", "/can-create", { type: "filesystem" })).body).toEqual({
      allowed: false,
      limit: 1,
      used: 1,
      reason: "config_limit_reached",
    });
  });

  test("a type above the tier is not allowed, with the reason", async () => {
    const { status, body } = await ada("POST", "/can-create", { type: "timeline_batch" });
    expect(status).toBe(200);
    expect(body).toMatchObject({ allowed: false, limit: 5, reason: "tier_insufficient" });
  });

  test("an unknown type or a malformed body is 422", async () => {
    expect((await ada("POST", "/can-create", { type: "nope" })).status).toBe(422);
    expect((await ada("POST", "/can-create", { kind: "filesystem" })).status).toBe(422);
    expect((await ada("POST", "/can-create", "{oops")).status).toBe(400);
  });

  test("needs a token", () => expectUnauthenticated(ada, "POST", "/can-create", { type: "filesystem" }));
});

describe("configuration CRUD", () => {
  test("create applies the schema's defaults; read, list, update and delete round-trip", async () => {
    const created = await ada("POST", "/configs", { type: "filesystem", name: "Notes", config: fsConfig });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      type: "filesystem",
      kind: "local",
      name: "Notes",
      config: { path: "/home/ada/notes", recursive: true, max_files: 500, extract: { tasks: true, events: true } },
    });
    const id = created.body.id;
    expect((await ada("GET", `/configs/${id}`)).body).toEqual(created.body);
    expect((await ada("GET", "/configs")).body.configs.map((each: { id: string }) => each.id)).toContain(id);

    const updated = await ada("PUT", `/configs/${id}`, {
      name: "Work notes",
      config: { path: "/work", recursive: false },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ name: "Work notes", config: { path: "/work", recursive: false } });

    expect((await ada("DELETE", `/configs/${id}`)).status).toBe(204);
    expect((await ada("GET", `/configs/${id}`)).status).toBe(404);
    expect((await ada("DELETE", `/configs/${id}`)).status).toBe(404);
  });

  test("a configuration that does not match its type's schema is 422 with the offending paths", async () => {
    const { status, body } = await ada("POST", "/configs", {
      type: "filesystem",
      config: { path: "", max_files: 0, surprise: 1 },
    });
    expect(status).toBe(422);
    const paths = body.error.details.map((issue: { path: string }) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(["config.path", "config.max_files"]));
    const created = await ada("POST", "/configs", {
      type: "task_batch",
      config: { documents: [{ title: "a", text: "b" }] },
    });
    expect(created.status).toBe(201);
    const badUpdate = await ada("PUT", `/configs/${created.body.id}`, { config: { documents: [] } });
    expect(badUpdate.status).toBe(422);
    expect((await ada("PUT", `/configs/${created.body.id}`, {})).status).toBe(422);
    await ada("DELETE", `/configs/${created.body.id}`);
  });

  test("a type above the user's tier is 403 tier_insufficient", async () => {
    const { status, body } = await ada("POST", "/configs", {
      type: "timeline_batch",
      config: { documents: [{ title: "a", text: "b" }] },
    });
    expect(status).toBe(403);
    expect(body.error.code).toBe("tier_insufficient");
  });

  test("another user's configuration, or a malformed id, is 404 for every verb", async () => {
    const { body } = await ada("POST", "/configs", { type: "filesystem", config: fsConfig });
    for (const [method, payload] of [["GET"], ["PUT", { name: "mine now" }], ["DELETE"]] as const) {
      expect((await bob(method, `/configs/${body.id}`, payload)).status).toBe(404);
    }
    expect((await bob("GET", "/configs")).body.configs).toEqual([]);
    expect((await ada("GET", "/configs/not-a-uuid")).status).toBe(404);
    expect((await ada("GET", `/configs/${body.id}`)).body.name).toBe("Filesystem agent");
    await ada("DELETE", `/configs/${body.id}`);
  });

  test("every configuration route needs a token", async () => {
    const id = crypto.randomUUID();
    await expectUnauthenticated(ada, "GET", "/configs");
    await expectUnauthenticated(ada, "POST", "/configs", { type: "filesystem", config: fsConfig });
    await expectUnauthenticated(ada, "GET", `/configs/${id}`);
    await expectUnauthenticated(ada, "PUT", `/configs/${id}`, { name: "x" });
    await expectUnauthenticated(ada, "DELETE", `/configs/${id}`);
  });
});

describe("configuration limit across two instances", () => {
  test("concurrent creates on two replicas stop exactly at the tier's limit", async () => {
    const other = await ctx.start([
      (platform) => createAgentService(platform, { ...memoryDevice(), models: mockModels() }),
    ]);
    const token = await ctx.token("erin", "pro");
    const [one, two] = [api(base, token), api(other.url, token)];
    const attempts = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        (n % 2 ? one : two)("POST", "/configs", { type: "filesystem", config: fsConfig }),
      ),
    );
    const statuses = attempts.map((each) => each.status).sort();
    expect(statuses.filter((status) => status === 201)).toHaveLength(5);
    expect(statuses.filter((status) => status === 403)).toHaveLength(7);
    expect(attempts.find((each) => each.status === 403)?.body.error.code).toBe("config_limit_reached");
    expect((await one("GET", "/configs")).body.configs).toHaveLength(5);
  });
});

describe("hostile input", () => {
  test("NUL characters are stripped before validation: a name of only NUL is 422, text keeps the rest", async () => {
    const carol = api(base, await ctx.token(`carol-${crypto.randomUUID()}`, "pro"));
    const empty = await carol("POST", "/configs", { type: "task_batch", name: "\u0000", config: docs("b") });
    expect({ status: empty.status, code: empty.body.error?.code }).toEqual({ status: 422, code: "validation_failed" });
    const onlyNul = await carol("POST", "/configs", { type: "task_batch", config: docs("\u0000") });
    expect({ status: onlyNul.status, code: onlyNul.body.error?.code }).toEqual({
      status: 422,
      code: "validation_failed",
    });
    const created = await carol("POST", "/configs", {
      type: "task_batch",
      name: "Inbox\u0000",
      config: docs("call\u0000 Bob\u202e"),
    });
    expect(created.status).toBe(201);
    expect({ name: created.body.name, config: created.body.config }).toEqual({
      name: "Inbox",
      config: docs("call Bob"),
    });
    const renamed = await carol("PUT", `/configs/${created.body.id}`, { name: "\u0000Work", config: docs("x\u0000") });
    expect({ status: renamed.status, name: renamed.body.name, config: renamed.body.config }).toEqual({
      status: 200,
      name: "Work",
      config: docs("x"),
    });
  });

  test("a body nested 100,000 deep is 422, never a 500", async () => {
    const deep = `{"type":"task_batch","config":{"documents":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`;
    for (const [method, path] of [
      ["POST", "/configs"],
      ["POST", "/journey/start"],
    ] as const) {
      const response = await ada(method, path, deep);
      expect({ path, status: response.status, code: response.body.error?.code }).toEqual({
        path,
        status: 422,
        code: "validation_failed",
      });
    }
  });

  test("a runs cursor with a year PostgreSQL refuses is 422", async () => {
    for (const before of ["0000-01-01T00:00:00Z", "+275760-09-13T00:00:00Z"]) {
      const response = await ada("GET", `/runs?before=${encodeURIComponent(before)}`);
      expect({ before, status: response.status }).toEqual({ before, status: 422 });
    }
  });
});

function docs(text: string) {
  return { documents: [{ title: "t", text }] };
}

test("without a token, a hostile body is 401 like any other", async () => {
  const deep = `{"type":"task_batch","config":${"[".repeat(1000)}${"]".repeat(1000)}}`;
  for (const body of [deep, '{"type":"x\\u0000","__proto__":{}}']) {
    expect((await ada("POST", "/configs", body, null)).status).toBe(401);
  }
});
