// Embedded mode (no S3_*): objects under DATA_DIR/storage, and the service itself answering the
// HMAC-signed URLs it hands out, so a client runs exactly the flow it runs against S3. Resumption is
// tested here end to end, ListParts included (the S3 test server has no ListParts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bytesOf, newUserId, type Storage, sha256Hex, startStorage } from "./harness";

let s: Storage;
beforeAll(async () => {
  s = await startStorage("local");
});
afterAll(() => s.ctx.close());

const MiB = 1024 * 1024;
/** Local parts are capped by the service's own body limit (MAX_BODY_BYTES, 1 MiB by default). */
const PART = MiB;

const fetchBytes = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()), headers: response.headers };
};

test("a single PUT and a download through the service's own signed URLs", async () => {
  const token = await s.token(newUserId());
  const data = bytesOf(200_000, 40);
  const { started, completed } = await s.upload(token, data, {
    name: "report final.pdf",
    contentType: "application/pdf",
  });
  expect(started.body).toMatchObject({ mode: "single", part_size: PART });
  expect(new URL(started.body.url.url).origin).toBe(s.server.url);
  expect(completed?.status).toBe(200);
  const link = await s.call("GET", `/objects/${started.body.upload_id}/download?redirect=false`, { token });
  const got = await fetchBytes(link.body.url);
  expect(got.status).toBe(200);
  expect(sha256Hex(got.bytes)).toBe(sha256Hex(data));
  expect(got.headers.get("content-type")).toBe("application/pdf");
  expect(got.headers.get("content-disposition")).toBe('attachment; filename="report final.pdf"');
});

describe("resuming a multipart upload", () => {
  test("after an interruption the service lists the parts that arrived; the client sends the rest and completes without ETags", async () => {
    const token = await s.token(newUserId(), "pro");
    const data = bytesOf(3 * MiB + 10, 41);
    const started = await s.start(token, data);
    expect(started.body).toMatchObject({ mode: "multipart", part_count: 4 });
    // The first session sent parts 1 and 3, then the app was closed.
    await s.putContent(token, started.body, data, [1, 3]);
    const status = await s.call("GET", `/uploads/${started.body.upload_id}`, { token });
    expect(status.status).toBe(200);
    expect(
      status.body.parts.map((part: { part_number: number; size: number }) => [part.part_number, part.size]),
    ).toEqual([
      [1, PART],
      [3, PART],
    ]);
    expect(status.body.missing).toEqual([2, 4]);
    await s.putContent(token, started.body, data, status.body.missing);
    const completed = await s.call("POST", `/uploads/${started.body.upload_id}/complete`, { token });
    expect(completed.status).toBe(200);
    expect(completed.body.sha256).toBe(sha256Hex(data));
    const link = await s.call("GET", `/objects/${started.body.upload_id}/download?redirect=false`, { token });
    expect(sha256Hex((await fetchBytes(link.body.url)).bytes)).toBe(sha256Hex(data));
  });

  test("completing with parts missing is a 409 naming them", async () => {
    const token = await s.token(newUserId(), "pro");
    const data = bytesOf(2 * MiB + 1, 42);
    const started = await s.start(token, data);
    await s.putContent(token, started.body, data, [2]);
    const refused = await s.call("POST", `/uploads/${started.body.upload_id}/complete`, { token });
    expect(refused.status).toBe(409);
    expect(refused.body.error.details.missing).toEqual([1, 3]);
  });
});

describe("signed URLs", () => {
  test("a changed grant, a changed signature, another method or a part of an aborted upload is refused with 403", async () => {
    const token = await s.token(newUserId(), "pro");
    const single = (await s.upload(token, bytesOf(10, 43), { complete: false })).started.body;
    const url = single.url.url as string;
    const [payload, signature] = url.slice(url.lastIndexOf("/") + 1).split(".") as [string, string];
    const grant = JSON.parse(Buffer.from(payload, "base64url").toString());
    const forged = Buffer.from(JSON.stringify({ ...grant, k: `users/${newUserId()}/${crypto.randomUUID()}` })).toString(
      "base64url",
    );
    const prefix = url.slice(0, url.lastIndexOf("/") + 1);
    const attempts = [
      await fetch(`${prefix}${forged}.${signature}`, { method: "PUT", body: "x" }),
      await fetch(`${prefix}${payload}.${signature.replace(/^./, (c) => (c === "A" ? "B" : "A"))}`, {
        method: "PUT",
        body: "x",
      }),
      await fetch(url, { method: "GET" }),
      await fetch(`${prefix}garbage`, { method: "PUT", body: "x" }),
    ];
    expect(attempts.map((response) => response.status)).toEqual([403, 403, 403, 403]);
    const body = (await attempts[0]?.json()) as { error: { code: string } };
    expect(body.error.code).toBe("invalid_signature");

    const data = bytesOf(2 * MiB, 44);
    const multi = (await s.upload(token, data, { complete: false })).started.body;
    const parts = await s.call("POST", `/uploads/${multi.upload_id}/parts`, { token, body: { part_numbers: [1] } });
    expect((await s.call("DELETE", `/uploads/${multi.upload_id}`, { token })).status).toBe(204);
    expect((await fetch(parts.body.parts[0].url, { method: "PUT", body: data.slice(0, 10) })).status).toBe(403);
  });

  test("a URL past its expiry is refused", async () => {
    const short = await startStorage("local", { env: { STORAGE_URL_TTL_S: "10" } });
    try {
      const token = await short.token(newUserId());
      const started = await short.call("POST", "/uploads", {
        token,
        body: { name: "x", size: 1, sha256: "f".repeat(64) },
      });
      const url = started.body.url.url as string;
      const [payload] = url.slice(url.lastIndexOf("/") + 1).split(".") as [string];
      const exp = JSON.parse(Buffer.from(payload, "base64url").toString()).exp as number;
      expect(exp * 1000 - Date.now()).toBeLessThanOrEqual(10_000);
      const realNow = Date.now;
      Date.now = () => (exp + 1) * 1000;
      try {
        expect((await fetch(url, { method: "PUT", body: "x" })).status).toBe(403);
      } finally {
        Date.now = realNow;
      }
      expect((await fetch(url, { method: "PUT", body: "x" })).status).toBe(200);
    } finally {
      await short.ctx.close();
    }
  });

  test("a body larger than a part is refused", async () => {
    const token = await s.token(newUserId());
    const started = await s.call("POST", "/uploads", { token, body: { name: "x", size: 10, sha256: "f".repeat(64) } });
    const response = await fetch(started.body.url.url, { method: "PUT", body: bytesOf(PART + 1, 45) });
    expect(response.status).toBe(413);
  });
});
