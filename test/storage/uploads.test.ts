// Files through presigned URLs against a real S3 REST server (s3-server.ts): single and multipart
// uploads and downloads with real HTTP PUT/GET, verification of size and SHA-256, quotas, listing,
// deletion, and every refusal: no token, another user's ids and URLs, a lower tier, bad input, the
// rate limit. PostgreSQL and Redis are real; each file has its own database and key prefix.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { limitsFor } from "../../src/shared/tiers";
import { usage } from "../../src/storage/tables";
import { bytesOf, newUserId, type Storage, sha256Hex, startStorage } from "./harness";

let s: Storage;
let s3: Bun.S3Client;
beforeAll(async () => {
  s = await startStorage("s3");
  s3 = new Bun.S3Client({
    endpoint: s.env.S3_ENDPOINT,
    bucket: s.env.S3_BUCKET,
    region: "us-east-1",
    accessKeyId: s.env.S3_ACCESS_KEY_ID,
    secretAccessKey: s.env.S3_SECRET_ACCESS_KEY,
  });
});
afterAll(() => s.ctx.close());

const MiB = 1024 * 1024;
const usageOf = async (userId: string) => {
  const [row] = await s.server.platform.db.select().from(usage).where(eq(usage.userId, userId));
  return { bytes: row?.bytes ?? 0, objects: row?.objects ?? 0 };
};
const download = async (token: string, id: string) => {
  const link = await s.call("GET", `/objects/${id}/download?redirect=false`, { token });
  expect(link.status).toBe(200);
  const response = await fetch(link.body.url);
  expect(response.status).toBe(200);
  return new Uint8Array(await response.arrayBuffer());
};

describe("single PUT", () => {
  test("a small file goes up on one presigned PUT, is verified, listed and comes back byte for byte", async () => {
    const userId = newUserId();
    const token = await s.token(userId);
    const data = bytesOf(100_000, 3);
    const { started, completed } = await s.upload(token, data, { name: "notes.bin" });
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ mode: "single", size: 100_000, part_count: 1, kind: "file" });
    // The URL names the object's key under the user's prefix, never anything the client sent.
    expect(new URL(started.body.url.url).pathname).toBe(
      `/${s.env.S3_BUCKET}/users/${userId}/${started.body.upload_id}`,
    );
    expect(completed?.status).toBe(200);
    expect(completed?.body).toMatchObject({
      id: started.body.upload_id,
      name: "notes.bin",
      size: 100_000,
      sha256: sha256Hex(data),
    });
    expect(sha256Hex(await download(token, started.body.upload_id))).toBe(sha256Hex(data));
    expect(await usageOf(userId)).toEqual({ bytes: 100_000, objects: 1 });
    const list = await s.call("GET", "/objects", { token });
    expect(list.body.items.map((item: { id: string }) => item.id)).toEqual([started.body.upload_id]);
  });

  test("the download route redirects to the presigned URL by default", async () => {
    const token = await s.token(newUserId());
    const { started } = await s.upload(token, bytesOf(10, 4));
    const redirect = await s.call("GET", `/objects/${started.body.upload_id}/download`, { token });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe(redirect.body.url);
    const followed = await fetch(redirect.headers.get("location") as string);
    expect(new Uint8Array(await followed.arrayBuffer())).toEqual(bytesOf(10, 4));
  });

  test("a checksum mismatch is refused with 422, the object deleted and the quota released", async () => {
    const userId = newUserId();
    const token = await s.token(userId);
    const data = bytesOf(5000, 5);
    const { started, completed } = await s.upload(token, data, { sha256: sha256Hex(bytesOf(5000, 6)) });
    expect(completed?.status).toBe(422);
    expect(completed?.body.error.code).toBe("checksum_mismatch");
    expect(await s3.file(`users/${userId}/${started.body.upload_id}`).exists()).toBe(false);
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
    expect((await s.call("GET", `/objects/${started.body.upload_id}`, { token })).status).toBe(404);
  });

  test("a size mismatch is refused with 422 before any byte is hashed", async () => {
    const userId = newUserId();
    const token = await s.token(userId);
    const data = bytesOf(900, 7);
    const { started, completed } = await s.upload(token, data, { size: 1000 });
    expect(completed?.status).toBe(422);
    expect(completed?.body.error.code).toBe("size_mismatch");
    expect(await s3.file(`users/${userId}/${started.body.upload_id}`).exists()).toBe(false);
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
  });

  test("completing before the PUT arrived is a size mismatch; completing twice is a 409", async () => {
    const userId = newUserId();
    const token = await s.token(userId);
    const started = await s.call("POST", "/uploads", { token, body: { name: "x", size: 10, sha256: "d".repeat(64) } });
    const early = await s.call("POST", `/uploads/${started.body.upload_id}/complete`, { token, body: {} });
    expect(early.status).toBe(422);
    expect(early.body.error.code).toBe("size_mismatch");
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
    const done = await s.upload(token, bytesOf(10, 9));
    expect(done.completed?.status).toBe(200);
    const again = await s.call("POST", `/uploads/${done.started.body.upload_id}/complete`, { token, body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("upload_completed");
  });

  test("two completions at once: one stores the object, the other is told it is being completed", async () => {
    const token = await s.token(newUserId());
    const { started } = await s.upload(token, bytesOf(50_000, 10), { complete: false });
    const both = await Promise.all(
      [1, 2].map(() => s.call("POST", `/uploads/${started.body.upload_id}/complete`, { token, body: {} })),
    );
    expect(both.map((each) => each.status).sort()).toEqual([200, 409]);
  });
});

describe("multipart", () => {
  test("a large file goes up in 8 MiB parts on presigned URLs and comes back byte for byte", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "pro");
    const data = bytesOf(17 * MiB + 123, 11);
    const { started, completed } = await s.upload(token, data);
    expect(started.body).toMatchObject({ mode: "multipart", part_size: 8 * MiB, part_count: 3 });
    expect(started.body.url).toBeUndefined();
    expect(completed?.status).toBe(200);
    expect(completed?.body.sha256).toBe(sha256Hex(data));
    expect(sha256Hex(await download(token, started.body.upload_id))).toBe(sha256Hex(data));
    expect(await usageOf(userId)).toEqual({ bytes: data.byteLength, objects: 1 });
  });

  test("an upload interrupted after one part resumes: the client asks for the missing parts' URLs and completes", async () => {
    const token = await s.token(newUserId(), "pro");
    const data = bytesOf(17 * MiB, 12);
    const started = (await s.start(token, data)).body;
    // The first attempt got only part 1 up before the connection died (the other PUTs never ran).
    const first = await s.putContent(token, started, data, [1]);
    const rest = await s.putContent(token, started, data, [2, 3]);
    const completed = await s.call("POST", `/uploads/${started.upload_id}/complete`, {
      token,
      body: { parts: [...first, ...rest] },
    });
    expect(completed.status).toBe(200);
    expect(sha256Hex(await download(token, started.upload_id))).toBe(sha256Hex(data));
  });

  test("a missing part is refused with 409 upload_incomplete and the upload stays open", async () => {
    const token = await s.token(newUserId(), "pro");
    const data = bytesOf(9 * MiB, 13);
    const started = await s.start(token, data);
    const one = await s.putContent(token, started.body, data, [1]);
    const refused = await s.call("POST", `/uploads/${started.body.upload_id}/complete`, {
      token,
      body: { parts: one },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: "upload_incomplete", details: { missing: [2] } });
    const two = await s.putContent(token, started.body, data, [2]);
    const done = await s.call("POST", `/uploads/${started.body.upload_id}/complete`, {
      token,
      body: { parts: [...one, ...two] },
    });
    expect(done.status).toBe(200);
  });

  test("a multipart checksum mismatch deletes the assembled object and releases the quota", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "pro");
    const data = bytesOf(9 * MiB, 14);
    const { started, completed } = await s.upload(token, data, { sha256: "0".repeat(64) });
    expect(completed?.status).toBe(422);
    expect(completed?.body.error.code).toBe("checksum_mismatch");
    expect(await s3.file(`users/${userId}/${started.body.upload_id}`).exists()).toBe(false);
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
  });

  test("part numbers beyond the upload's count are refused; a single upload has no parts", async () => {
    const token = await s.token(newUserId(), "pro");
    const multi = await s.upload(token, bytesOf(9 * MiB, 15), { complete: false });
    const beyond = await s.call("POST", `/uploads/${multi.started.body.upload_id}/parts`, {
      token,
      body: { part_numbers: [3] },
    });
    expect(beyond.status).toBe(422);
    expect(beyond.body.error.code).toBe("invalid_part");
    const single = await s.upload(token, bytesOf(10, 16), { complete: false });
    const none = await s.call("POST", `/uploads/${single.started.body.upload_id}/parts`, {
      token,
      body: { part_numbers: [1] },
    });
    expect(none.status).toBe(409);
  });

  test("aborting releases the reservation and forgets the upload", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "pro");
    const data = bytesOf(9 * MiB, 17);
    const { started } = await s.upload(token, data, { complete: false });
    expect(await usageOf(userId)).toEqual({ bytes: data.byteLength, objects: 1 });
    expect((await s.call("DELETE", `/uploads/${started.body.upload_id}`, { token })).status).toBe(204);
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
    expect((await s.call("GET", `/uploads/${started.body.upload_id}`, { token })).status).toBe(404);
  });
});

describe("quotas and tiers", () => {
  test("a file larger than the tier's ceiling is refused with 413 before anything is reserved", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "free");
    const tooLarge = limitsFor("free").maxObjectBytes + 1;
    const refused = await s.call("POST", "/uploads", {
      token,
      body: { name: "big.iso", size: tooLarge, sha256: "a".repeat(64) },
    });
    expect(refused.status).toBe(413);
    expect(refused.body.error.code).toBe("object_too_large");
    expect(await usageOf(userId)).toEqual({ bytes: 0, objects: 0 });
    // The same size is fine for a higher tier.
    const pro = await s.call("POST", "/uploads", {
      token: await s.token(newUserId(), "pro"),
      body: { name: "big.iso", size: tooLarge, sha256: "a".repeat(64) },
    });
    expect(pro.status).toBe(201);
  });

  test("uploads past the byte quota are refused with 409 quota_exceeded; a delete makes room again", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "free");
    const quota = limitsFor("free").storageBytes;
    await s.server.platform.db.insert(usage).values({ userId, bytes: quota - 150, objects: 1 });
    const fits = await s.upload(token, bytesOf(100, 18));
    expect(fits.completed?.status).toBe(200);
    const over = await s.call("POST", "/uploads", { token, body: { name: "x", size: 100, sha256: "b".repeat(64) } });
    expect(over.status).toBe(409);
    expect(over.body.error.code).toBe("quota_exceeded");
    expect((await s.call("DELETE", `/objects/${fits.started.body.upload_id}`, { token })).status).toBe(204);
    expect(await s3.file(`users/${userId}/${fits.started.body.upload_id}`).exists()).toBe(false);
    const again = await s.upload(token, bytesOf(100, 19));
    expect(again.completed?.status).toBe(200);
  });

  test("the object count is a quota too", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "free");
    await s.server.platform.db.insert(usage).values({ userId, bytes: 0, objects: limitsFor("free").storageObjects });
    const over = await s.call("POST", "/uploads", { token, body: { name: "x", size: 1, sha256: "c".repeat(64) } });
    expect(over.status).toBe(409);
  });
});

describe("listing", () => {
  test("pages with a cursor, newest first, files only; a bad cursor is a 422", async () => {
    const token = await s.token(newUserId());
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await s.upload(token, bytesOf(10, 20 + i))).started.body.upload_id);
    const first = await s.call("GET", "/objects?limit=2", { token });
    expect(first.body.items.map((item: { id: string }) => item.id)).toEqual([ids[2], ids[1]]);
    const second = await s.call("GET", `/objects?limit=2&cursor=${first.body.next_cursor}`, { token });
    expect(second.body.items.map((item: { id: string }) => item.id)).toEqual([ids[0]]);
    expect(second.body.next_cursor).toBeNull();
    const bad = await s.call("GET", "/objects?cursor=bm9wZQ", { token });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("invalid_cursor");
  });
});

describe("another user's ids and URLs", () => {
  test("every route answers 404 for another user's upload or object, as for a made-up one", async () => {
    const owner = await s.token(newUserId(), "pro");
    const other = await s.token(newUserId(), "pro");
    const open = (await s.upload(owner, bytesOf(9 * MiB, 30), { complete: false })).started.body.upload_id;
    const stored = (await s.upload(owner, bytesOf(10, 31))).started.body.upload_id;
    const attempts = [
      await s.call("GET", `/uploads/${open}`, { token: other }),
      await s.call("POST", `/uploads/${open}/parts`, { token: other, body: { part_numbers: [1] } }),
      await s.call("POST", `/uploads/${open}/complete`, { token: other, body: {} }),
      await s.call("DELETE", `/uploads/${open}`, { token: other }),
      await s.call("GET", `/objects/${stored}`, { token: other }),
      await s.call("GET", `/objects/${stored}/download`, { token: other }),
      await s.call("DELETE", `/objects/${stored}`, { token: other }),
      await s.call("POST", `/objects/${stored}/index`, { token: other }),
    ];
    expect(attempts.map((each) => each.status)).toEqual(Array(attempts.length).fill(404));
    expect((await s.call("GET", `/objects/${stored}`, { token: owner })).status).toBe(200);
    expect((await s.call("GET", "/objects", { token: other })).body.items).toEqual([]);
  });

  test("a presigned URL works for its own key only: pointed at another user's key, S3 refuses it", async () => {
    const victimId = newUserId();
    const victim = await s.token(victimId);
    const victimObject = (await s.upload(victim, bytesOf(10, 32))).started.body.upload_id;
    const attacker = await s.token(newUserId());
    const mine = (await s.upload(attacker, bytesOf(10, 33))).started.body.upload_id;
    const link = await s.call("GET", `/objects/${mine}/download?redirect=false`, { token: attacker });
    const url = new URL(link.body.url);
    url.pathname = `/${s.env.S3_BUCKET}/users/${victimId}/${victimObject}`;
    expect((await fetch(url)).status).toBe(403);
    const put = await s.upload(attacker, bytesOf(10, 34), { complete: false });
    const upload = new URL(put.started.body.url.url);
    upload.pathname = `/${s.env.S3_BUCKET}/users/${victimId}/${victimObject}`;
    expect((await fetch(upload, { method: "PUT", body: "overwritten" })).status).toBe(403);
    expect(sha256Hex(await download(victim, victimObject))).toBe(sha256Hex(bytesOf(10, 32)));
  });

  test("download URLs are short-lived: S3 is told STORAGE_URL_TTL_S", async () => {
    const token = await s.token(newUserId());
    const id = (await s.upload(token, bytesOf(10, 35))).started.body.upload_id;
    const link = await s.call("GET", `/objects/${id}/download?redirect=false`, { token });
    expect(new URL(link.body.url).searchParams.get("X-Amz-Expires")).toBe("900");
    expect(Date.parse(link.body.expires_at) - Date.now()).toBeLessThanOrEqual(900_000);
  });
});

describe("refusals", () => {
  test("without a token every route answers 401", async () => {
    const id = crypto.randomUUID();
    const statuses = await Promise.all(
      [
        ["POST", "/uploads"],
        ["GET", `/uploads/${id}`],
        ["POST", `/uploads/${id}/parts`],
        ["POST", `/uploads/${id}/complete`],
        ["DELETE", `/uploads/${id}`],
        ["GET", "/objects"],
        ["GET", `/objects/${id}`],
        ["GET", `/objects/${id}/download`],
        ["DELETE", `/objects/${id}`],
        ["POST", `/objects/${id}/index`],
        ["POST", "/search"],
        ["POST", "/backups"],
        ["GET", "/backups"],
      ].map(
        async ([method, path]) =>
          (await s.call(method as string, path as string, { body: method === "POST" ? {} : undefined })).status,
      ),
    );
    expect(statuses).toEqual(Array(statuses.length).fill(401));
  });

  test("bad input gets a 4xx with a code, never a 5xx", async () => {
    const token = await s.token(newUserId());
    const bodies = [
      { name: "a/b", size: 1, sha256: "a".repeat(64) },
      { name: "x", size: -1, sha256: "a".repeat(64) },
      { name: "x", size: 1, sha256: "not hex" },
      { name: "x", size: 1, sha256: "a".repeat(64), content_type: "no type" },
      { name: "x", size: 1, sha256: "a".repeat(64), key: "users/someone-else/x" },
    ];
    for (const body of bodies) {
      const refused = await s.call("POST", "/uploads", { token, body });
      expect({ body, status: refused.status }).toEqual({ body, status: 422 });
      expect(refused.body.error.code).toBeString();
    }
    const badId = await s.call("GET", "/uploads/not-a-uuid", { token });
    expect(badId.status).toBe(422);
  });

  test("the tier's requests per minute apply to the service: the 21st request of a free user is a 429", async () => {
    const token = await s.token(newUserId(), "free");
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await s.call("GET", "/objects", { token })).status);
    expect(statuses.slice(0, 20)).toEqual(Array(20).fill(200));
    expect(statuses[20]).toBe(429);
  });
});
