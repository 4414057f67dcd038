// The shared HTTP layer on a real server: error shape, request ids, body limits, metrics.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { z } from "zod";
import type { ServiceModule } from "../../src/shared/app";
import { conflict } from "../../src/shared/errors";
import { createTestContext, type TestContext } from "../../src/shared/testing";

const Echo = z.object({ name: z.string().min(1) }).strict();

const echoService = async (): Promise<ServiceModule> => ({
  name: "echo",
  prefix: "/api/v1/echo",
  plugin: new Elysia({ prefix: "/api/v1/echo" })
    .post("/", ({ body }) => ({ hello: body.name }), { body: Echo })
    .get("/conflict", () => {
      throw conflict("already_there", "it exists");
    })
    .get("/boom", () => {
      throw new Error("secret internal detail");
    }),
});

let ctx: TestContext;
let base: string;
beforeAll(async () => {
  ctx = await createTestContext();
  const server = await ctx.start([echoService], { env: { MAX_BODY_BYTES: "1024" } });
  base = server.url;
});
afterAll(() => ctx.close());

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/api/v1/echo`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

describe("http conventions", () => {
  test("a valid request succeeds and carries a request id", async () => {
    const response = await post(JSON.stringify({ name: "ada" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ hello: "ada" });
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("a caller's request id is kept", async () => {
    const response = await post(JSON.stringify({ name: "ada" }), { "x-request-id": "abc-123" });
    expect(response.headers.get("x-request-id")).toBe("abc-123");
  });

  test("unknown routes are 404 in the error shape", async () => {
    const response = await fetch(`${base}/nowhere`, { headers: { "x-request-id": "r1" } });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: "not_found", message: "no such route", request_id: "r1" } });
  });

  test("malformed JSON is 400 in the error shape", async () => {
    const response = await post("{not json", { "x-request-id": "r2" });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: "malformed_body", message: "request body could not be parsed", request_id: "r2" },
    });
  });

  test("schema violations are 422 with the failing paths", async () => {
    const response = await post(JSON.stringify({ name: "", extra: 1 }));
    expect(response.status).toBe(422);
    const body = (await response.json()) as { error: { code: string; details: Array<{ path: string }> } };
    expect(body.error.code).toBe("validation_failed");
    expect(body.error.details.length).toBeGreaterThan(0);
  });

  test("bodies over the limit are 413 in the error shape", async () => {
    const response = await post(JSON.stringify({ name: "x".repeat(5000) }));
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
  });

  test("service errors keep their status and code", async () => {
    const response = await fetch(`${base}/api/v1/echo/conflict`);
    expect(response.status).toBe(409);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("already_there");
  });

  test("unexpected errors are 500 without internals", async () => {
    const response = await fetch(`${base}/api/v1/echo/boom`);
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(text).not.toContain("secret");
    expect(JSON.parse(text).error.code).toBe("internal");
  });

  test("health, readiness, metrics and docs are served", async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect(await ready.json()).toEqual({ status: "ready", checks: { database: "ok", redis: "ok" } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('http_requests_total{service="echo",method="POST",route="/api/v1/echo/",status="200"}');
    const docs = (await (await fetch(`${base}/api/v1/echo/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(docs.paths)).toContain("/api/v1/echo/");
  });
});
