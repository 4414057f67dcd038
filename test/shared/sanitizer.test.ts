// The sanitizer policy, as a function (what WebSocket frames use) and as a plugin on a real server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { z } from "zod";
import { sanitizer, sanitizeText, sanitizeValue } from "../../src/shared/sanitizer";
import { createTestContext, type TestContext } from "../../src/shared/testing";

describe("sanitizeText", () => {
  test("strips control, BOM and bidi override characters, keeps tabs, newlines, emoji and joiners", () => {
    expect(sanitizeText("a\u0000b\u0007c\u001bd\u007fe\u0085f\u202eg\u2066h\ufeffi")).toBe("abcdefghi");
    expect(sanitizeText("line 1\nline 2\r\n\tindented")).toBe("line 1\nline 2\r\n\tindented");
    expect(sanitizeText("family 👨\u200d👩\u200d👧 ok")).toBe("family 👨\u200d👩\u200d👧 ok");
  });

  test("lone surrogates become the replacement character", () => {
    expect(sanitizeText("x\ud800y\udc00z")).toBe("x\ufffdy\ufffdz");
    expect(sanitizeText("😀")).toBe("😀");
  });
});

describe("sanitizeValue", () => {
  test("cleans strings at every depth and leaves other values alone", () => {
    expect(sanitizeValue({ a: "x\u0000", b: [1, "y\u0001", { c: true, d: null }] })).toEqual({
      a: "x",
      b: [1, "y", { c: true, d: null }],
    });
  });

  test("rejects prototype keys, keys with control characters and deep nesting with a 422", () => {
    expect(() => sanitizeValue(JSON.parse('{"__proto__": {"admin": true}}'))).toThrow(
      expect.objectContaining({ status: 422 }),
    );
    expect(() => sanitizeValue({ "a\u0000": 1 })).toThrow(expect.objectContaining({ status: 422 }));
    let deep: unknown = "leaf";
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => sanitizeValue(deep)).toThrow(expect.objectContaining({ status: 422 }));
    expect(() => sanitizeValue(deep, { maxDepth: 64 })).not.toThrow();
  });
});

const Note = z.strictObject({ title: z.string().min(1).max(50), body: z.string().max(500) });

let ctx: TestContext;
let base: string;
beforeAll(async () => {
  ctx = await createTestContext();
  const server = await ctx.start([
    async () => ({
      name: "notes",
      prefix: "/api/v1/notes",
      plugin: new Elysia({ prefix: "/api/v1/notes" })
        .use(sanitizer({ maxBodyBytes: 256 }))
        .post("/", ({ body }) => body, { body: Note })
        .get("/", ({ query }) => query),
    }),
  ]);
  base = server.url;
});
afterAll(() => ctx.close());

const post = (body: unknown) =>
  fetch(`${base}/api/v1/notes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("sanitizer plugin", () => {
  test("strips control characters before validation", async () => {
    const response = await post({ title: "he\u0000llo\u202e", body: "a\nb\u0007" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ title: "hello", body: "a\nb" });
  });

  test("a title made only of control characters is empty after stripping, so it fails validation", async () => {
    expect((await post({ title: "\u0000\u0001", body: "" })).status).toBe(422);
  });

  test("unexpected fields are 422", async () => {
    const response = await post({ title: "t", body: "b", admin: true });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("validation_failed");
  });

  test("a prototype key is 422, never merged", async () => {
    const response = await fetch(`${base}/api/v1/notes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"title":"t","body":"b","__proto__":{"x":1}}',
    });
    expect(response.status).toBe(422);
  });

  test("a body over the route's own limit is 413", async () => {
    const response = await post({ title: "t", body: "x".repeat(400) });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
  });

  test("a body nested 100,000 deep is refused with a 4xx, whether or not its length is declared", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const declared = await fetch(`${base}/api/v1/notes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: deep,
    });
    expect(declared.status).toBe(413);
    // Streamed, the length is unknown until the body is measured: depth must be refused first.
    const streamed = await fetch(`${base}/api/v1/notes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(deep));
          controller.close();
        },
      }),
    });
    expect({
      status: streamed.status,
      code: ((await streamed.json()) as { error: { code: string } }).error.code,
    }).toEqual({ status: 422, code: "validation_failed" });
  });

  test("query strings are cleaned too", async () => {
    const response = await fetch(`${base}/api/v1/notes?q=${encodeURIComponent("a\u0000b")}`);
    expect(await response.json()).toEqual({ q: "ab" });
  });
});
