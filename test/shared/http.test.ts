// The shared HTTP layer on a real server: error shape, request ids, body limits, metrics, paths
// spelled with dot segments. Those are sent over a raw TCP socket, because fetch() resolves dot
// segments before sending, as browsers do; an attacker's client does not.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { Elysia } from "elysia";
import { z } from "zod";
import type { ServiceModule } from "../../src/shared/app";
import { conflict } from "../../src/shared/errors";
import { createTestContext, type TestContext } from "../../src/shared/testing";

const Echo = z.object({ name: z.string().min(1) }).strict();

/** Routes outside the echo prefix, each counting the requests that reached it. */
const reached: string[] = [];
const otherService = async (): Promise<ServiceModule> => ({
  name: "other",
  prefix: "/api/v1/other",
  plugin: new Elysia({ prefix: "/api/v1/other" })
    .get("/secret", () => {
      reached.push("secret");
      return { secret: true };
    })
    .get("/items/:id", ({ params }) => {
      reached.push(`item ${params.id}`);
      return { id: params.id };
    }),
});

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
let port: number;
let metricsUrl: string;
beforeAll(async () => {
  ctx = await createTestContext();
  const server = await ctx.start([echoService, otherService], { env: { MAX_BODY_BYTES: "1024" } });
  base = server.url;
  port = server.port;
  metricsUrl = server.metricsUrl;
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

  test("health, readiness and docs are served", async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect(await ready.json()).toEqual({ status: "ready", checks: { database: "ok", redis: "ok" } });
    const docs = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(docs.paths)).toContain("/api/v1/echo/");
  });
});

describe("metrics", () => {
  test("are served on their own port, and only at /metrics", async () => {
    await post(JSON.stringify({ name: "ada" }));
    const response = await fetch(metricsUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain");
    expect(await response.text()).toContain(
      'http_requests_total{service="all",method="POST",route="/api/v1/echo/",status="200"}',
    );
    const metricsBase = metricsUrl.replace(/\/metrics$/, "");
    expect(metricsBase).not.toBe(base);
    for (const path of ["/health", "/api/v1/echo/conflict", "/metrics/", "/"]) {
      expect({ path, status: (await fetch(`${metricsBase}${path}`)).status }).toEqual({ path, status: 404 });
    }
  });

  test("the public port answers /metrics with a 404 in the error shape", async () => {
    const response = await fetch(`${base}/metrics`, { headers: { "x-request-id": "m1" } });
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: 404,
      body: { error: { code: "not_found", message: "no such route", request_id: "m1" } },
    });
  });
});

/** One request with its target sent byte for byte; the status line and the body. */
async function rawRequest(target: string, method = "GET"): Promise<{ status: number; body: string }> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () =>
      socket.write(
        `${method} ${target} HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${method === "POST" ? 14 : 0}\r\nConnection: close\r\n\r\n${method === "POST" ? '{"name":"ada"}' : ""}`,
      ),
    );
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk;
    });
    socket.on("end", () => resolve(data));
    socket.on("error", reject);
  });
  const [head = "", body = ""] = text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), body };
}

describe("paths with dot segments", () => {
  const targets = [
    "/api/v1/echo/../other/secret",
    "/api/v1/echo/%2e%2e/other/secret",
    "/api/v1/echo/%2E%2E/other/secret",
    "/api/v1/echo/%2E./other/secret",
    "/api/v1/echo/.%2e/other/secret",
    "/api/v1/echo/./../other/secret",
    "/api/v1/echo/..\\other\\secret",
    "/api/v1/echo/%2e%2e%5cother%5csecret",
    "/api/v1/echo/../other/secret/",
    "/api/v1/echo/../../../api/v1/other/items/7",
    "/api/v1/echo/../../../metrics",
    "/api/v1/echo/%2e%2e/%2e%2e/%2e%2e/metrics",
    "/api/v1/echo/../../../health",
    "/api/v1/echo/%2e%2e/%2e%2e/%2e%2e/ready",
    "/api/v1/other/items/%2e%2e",
    "/api/v1/other/items/.%2E",
    "/api/v1/other/items/..%5c..%5csecret",
    "/api/v1/other/items/%252e%252e",
    // Indistinguishable from `/api/v1/other/x/../secret/` once resolved, so refused as well.
    "/api/v1/other/secret/",
  ];

  test("never reach a handler, metrics or anything outside the prefix: 404 in the error shape", async () => {
    reached.length = 0;
    for (const target of targets) {
      const { status, body } = await rawRequest(target);
      expect({ target, status, code: JSON.parse(body || "{}").error?.code }).toEqual({
        target,
        status: 404,
        code: "not_found",
      });
      expect(body).not.toContain("http_requests_total");
    }
    expect(reached).toEqual([]);
  });

  test("the same routes spelled plainly are served", async () => {
    reached.length = 0;
    expect((await rawRequest("/api/v1/other/secret")).status).toBe(200);
    expect(await rawRequest("/api/v1/other/items/7")).toEqual({ status: 200, body: '{"id":"7"}' });
    expect((await rawRequest("/api/v1/other/items/a.b?x=../y")).status).toBe(200);
    expect((await rawRequest("/health")).status).toBe(200);
    for (const target of ["/api/v1/echo", "/api/v1/echo/"]) {
      expect({ target, ...(await rawRequest(target, "POST")) }).toEqual({
        target,
        status: 200,
        body: '{"hello":"ada"}',
      });
    }
    expect(reached).toEqual(["secret", "item 7", "item a.b"]);
  });
});
