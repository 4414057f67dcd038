// Encrypted backups: the same upload flow as files, kind backup, with their metadata; retention per
// tier (newest of each of the last N days and M ISO weeks, per device) applied when a backup
// completes and by the sweep; restore through the download URL. The SDK's helpers encrypt before
// upload; test/client/backup.test.ts runs them under Node 20 too.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createApiClient, decryptBackup, downloadBackup, encryptBackup, uploadBackup } from "../../src/client";
import { eventually } from "../../src/shared/testing";
import { isoWeek, retained } from "../../src/storage/backups";
import { objects, usage } from "../../src/storage/tables";
import { bytesOf, newUserId, type Storage, sha256Hex, startStorage } from "./harness";

let s: Storage;
beforeAll(async () => {
  // A short sweep interval: the scheduled pruning is seen within the test.
  s = await startStorage("s3", { env: { STORAGE_SWEEP_INTERVAL_MS: "200" } });
});
afterAll(() => s.ctx.close());

const KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const DAY = 86_400_000;

describe("retention", () => {
  test("ISO weeks: Monday starts one, and the year's first week holds its first Thursday", () => {
    expect(isoWeek(new Date("2026-11-30T10:00:00Z"))).toBe("2026-W49");
    expect(isoWeek(new Date("2026-11-29T23:59:59Z"))).toBe("2026-W48");
    expect(isoWeek(new Date("2027-01-01T00:00:00Z"))).toBe("2026-W53");
    expect(isoWeek(new Date("2025-12-29T00:00:00Z"))).toBe("2026-W01");
  });

  test("keeps the newest of each of the last N days and M weeks, nothing else", () => {
    const at = (iso: string) => new Date(iso);
    const backups = [
      { id: "mon-late", createdAt: at("2026-11-30T20:00:00Z") },
      { id: "mon-early", createdAt: at("2026-11-30T08:00:00Z") },
      { id: "sun", createdAt: at("2026-11-29T08:00:00Z") },
      { id: "sat", createdAt: at("2026-11-28T08:00:00Z") },
      { id: "week-47", createdAt: at("2026-11-18T08:00:00Z") },
      { id: "week-47-older", createdAt: at("2026-11-17T08:00:00Z") },
      { id: "week-40", createdAt: at("2026-10-01T08:00:00Z") },
    ];
    // 2 days (mon-late, sun) + 3 weeks (mon-late for W49, sun for W48, week-47 for W47).
    expect([...retained(backups, 2, 3)].sort()).toEqual(["mon-late", "sun", "week-47"].sort());
    expect(retained(backups, 0, 0).size).toBe(0);
    expect(retained(backups, 10, 10).size).toBe(6);
  });
});

describe("backups through the API", () => {
  test("an encrypted backup goes up, is listed with its metadata, and restores to the same bytes", async () => {
    const userId = newUserId();
    const token = await s.token(userId, "pro");
    const api = createApiClient({ baseUrl: s.server.url, token });
    const database = bytesOf(300_000, 50);
    const stored = await uploadBackup(api, { key: KEY, deviceId: "laptop", data: database, chunkBytes: 64 * 1024 });
    expect(stored).toMatchObject({ kind: "backup", backup: { device_id: "laptop", header_version: 1 } });
    // The bucket holds ciphertext only.
    const link = await s.call("GET", `/objects/${stored.id}/download?redirect=false`, { token });
    const blob = new Uint8Array(await (await fetch(link.body.url)).arrayBuffer());
    expect(sha256Hex(blob)).toBe(stored.sha256);
    expect(sha256Hex(blob)).not.toBe(sha256Hex(database));
    expect(await decryptBackup(KEY, blob)).toEqual(database);
    expect(await downloadBackup(api, { id: stored.id, key: KEY })).toEqual(database);
    const listed = await s.call("GET", "/backups?device_id=laptop", { token });
    expect(listed.body.items.map((item: { id: string }) => item.id)).toEqual([stored.id]);
    // Backups are not files.
    expect((await s.call("GET", "/objects", { token })).body.items).toEqual([]);
  });

  test("a large backup goes up in parts (multipart on S3)", async () => {
    const token = await s.token(newUserId(), "pro");
    const api = createApiClient({ baseUrl: s.server.url, token });
    const database = bytesOf(9 * 1024 * 1024, 51);
    const stored = await uploadBackup(api, { key: KEY, deviceId: "desktop", data: database });
    expect(await downloadBackup(api, { id: stored.id, key: KEY })).toEqual(database);
  });

  test("completing a backup prunes that device's backups past the tier's retention", async () => {
    const userId = newUserId();
    // team: 30 daily, 26 weekly (and 200 requests a minute, room for 40 uploads).
    const token = await s.token(userId, "team");
    const api = createApiClient({ baseUrl: s.server.url, token });
    const now = Date.now();
    // Backups every day for 40 days, oldest first, and one of another device.
    const days = Array.from({ length: 40 }, (_, index) => 39 - index);
    const made = new Map<number, string>();
    for (const day of days) {
      const stored = await uploadBackup(api, {
        key: KEY,
        deviceId: "laptop",
        data: bytesOf(100, day),
        createdAt: new Date(now - day * DAY),
      });
      made.set(day, stored.id);
    }
    const other = await uploadBackup(api, {
      key: KEY,
      deviceId: "phone",
      data: bytesOf(10, 99),
      createdAt: new Date(now - 39 * DAY),
    });
    const expected = retained(
      days.map((day) => ({ id: made.get(day) as string, createdAt: new Date(now - day * DAY) })),
      30,
      26,
    );
    const listed = await s.call("GET", "/backups?device_id=laptop&limit=100", { token });
    expect(new Set(listed.body.items.map((item: { id: string }) => item.id))).toEqual(expected);
    // The 30 newest days, plus one for each older ISO week.
    expect(expected.size).toBeGreaterThan(30);
    expect(expected.size).toBeLessThan(34);
    expect((await s.call("GET", `/objects/${other.id}`, { token })).status).toBe(200);
    // Pruned backups gave their quota back.
    const [row] = await s.server.platform.db.select().from(usage).where(eq(usage.userId, userId));
    expect(row?.objects).toBe(expected.size + 1);
  }, 60_000);

  test("the sweep prunes by the user's current tier and aborts expired uploads, releasing their quota", async () => {
    const userId = newUserId();
    const pro = await s.token(userId, "pro");
    const api = createApiClient({ baseUrl: s.server.url, token: pro });
    const now = Date.now();
    for (let day = 10; day >= 0; day--) {
      await uploadBackup(api, {
        key: KEY,
        deviceId: "laptop",
        data: bytesOf(50, day),
        createdAt: new Date(now - day * DAY),
      });
    }
    // pro keeps 14 days: all 11. The user moves to free (7 days, 4 weeks): the next upload says so.
    expect((await s.call("GET", "/backups?limit=100", { token: pro })).body.items.length).toBe(11);
    const free = await s.token(userId, "free");
    const open = await s.call("POST", "/uploads", {
      token: free,
      body: { name: "x", size: 5, sha256: "a".repeat(64) },
    });
    expect(open.status).toBe(201);
    await s.server.platform.db
      .update(objects)
      .set({ expiresAt: new Date(now - 1000) })
      .where(eq(objects.id, open.body.upload_id));
    const expected = retained(
      Array.from({ length: 11 }, (_, day) => ({ id: String(day), createdAt: new Date(now - day * DAY) })),
      7,
      4,
    ).size;
    // The sweep deletes the backups past retention one by one: wait for it to have deleted them all
    // (the count passes through the values in between), then check it stopped there.
    const kept = await eventually(
      async () => (await s.call("GET", "/backups?limit=100", { token: free })).body.items.length as number,
      (count) => count <= expected,
    );
    expect(kept).toBe(expected);
    await eventually(
      async () => (await s.call("GET", `/uploads/${open.body.upload_id}`, { token: free })).status,
      (status) => status === 404,
    );
    const [row] = await s.server.platform.db.select().from(usage).where(eq(usage.userId, userId));
    expect(row?.objects).toBe(kept);
  }, 60_000);

  test("bad backup metadata is a 422; another user's backup is a 404; no token is a 401", async () => {
    const token = await s.token(newUserId());
    const bad = await s.call("POST", "/backups", {
      token,
      body: { device_id: "", created_at: "yesterday", size: 1, sha256: "a".repeat(64), header_version: 0 },
    });
    expect(bad.status).toBe(422);
    const owner = createApiClient({ baseUrl: s.server.url, token: await s.token(newUserId()) });
    const stored = await uploadBackup(owner, { key: KEY, deviceId: "d", data: bytesOf(10, 1) });
    expect((await s.call("GET", `/objects/${stored.id}/download`, { token })).status).toBe(404);
    expect((await s.call("GET", "/backups", { token })).body.items).toEqual([]);
    expect((await s.call("GET", "/backups")).status).toBe(401);
  });
});

describe("the encryption format", () => {
  test("round trips any size, including empty and exact multiples of the chunk", async () => {
    for (const size of [0, 1, 1023, 1024, 1025, 5000]) {
      const data = bytesOf(size, size + 1);
      const blob = await encryptBackup(KEY, data, { chunkBytes: 1024 });
      expect(await decryptBackup(KEY, blob)).toEqual(data);
    }
  });

  test("a flipped byte, a dropped last chunk, swapped chunks or another key are refused", async () => {
    const data = bytesOf(4096, 7);
    const blob = await encryptBackup(KEY, data, { chunkBytes: 1024 });
    const sealed = 1024 + 16;
    const flipped = blob.slice();
    flipped[100] = (flipped[100] ?? 0) ^ 1;
    const cut = blob.slice(0, 17 + 3 * sealed);
    const swapped = blob.slice();
    swapped.set(blob.subarray(17, 17 + sealed), 17 + sealed);
    swapped.set(blob.subarray(17 + sealed, 17 + 2 * sealed), 17);
    const otherKey = crypto.getRandomValues(new Uint8Array(32));
    for (const [label, attempt] of [
      ["flipped", () => decryptBackup(KEY, flipped)],
      ["cut", () => decryptBackup(KEY, cut)],
      ["swapped", () => decryptBackup(KEY, swapped)],
      ["other key", () => decryptBackup(otherKey, blob)],
      ["not a backup", () => decryptBackup(KEY, bytesOf(100, 1))],
    ] as const) {
      expect({
        label,
        error: await attempt().then(
          () => "none",
          (error: Error) => error.name,
        ),
      }).toEqual({
        label,
        error: "BackupFormatError",
      });
    }
  });
});
