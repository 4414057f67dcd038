// The quota holds under real concurrency: two uploads started at the same moment that together
// would cross the user's limit, on separate PostgreSQL connections, over hundreds of rounds — exactly
// one wins every time. Then the same race through HTTP, the way clients meet it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { limitsFor } from "../../src/shared/tiers";
import { quotaExceeded, reserve } from "../../src/storage/quota";
import { usage } from "../../src/storage/tables";
import { newUserId, type Storage, startStorage } from "./harness";

let s: Storage;
beforeAll(async () => {
  s = await startStorage("local");
});
afterAll(() => s.ctx.close());

const ROUNDS = 300;
const code = quotaExceeded("").code;

test(`two reservations crossing the byte limit together: exactly one wins, ${ROUNDS} rounds`, async () => {
  const { db } = s.server.platform;
  const quota = limitsFor("free").storageBytes;
  const outcomes: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const userId = newUserId();
    // Room for one 60-byte upload, not two; odd rounds start with no usage row at all (the insert races too).
    if (round % 2 === 0) await db.insert(usage).values({ userId, bytes: quota - 100, objects: 0 });
    const size = round % 2 === 0 ? 60 : quota / 2 + 1;
    const results = await Promise.allSettled(
      [1, 2].map(() => db.transaction((tx) => reserve(tx, userId, "free", size))),
    );
    const won = results.filter((result) => result.status === "fulfilled").length;
    const refused = results.filter(
      (result) => result.status === "rejected" && (result.reason as { code?: string }).code === code,
    ).length;
    outcomes.push(`${won}/${refused}`);
    const [row] = await db.select().from(usage).where(eq(usage.userId, userId));
    expect(row?.bytes).toBe(round % 2 === 0 ? quota - 40 : size);
  }
  expect(outcomes).toEqual(Array(ROUNDS).fill("1/1"));
}, 60_000);

test(`two reservations crossing the object limit together: exactly one wins, ${ROUNDS} rounds`, async () => {
  const { db } = s.server.platform;
  const limit = limitsFor("free").storageObjects;
  let wins = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const userId = newUserId();
    await db.insert(usage).values({ userId, bytes: 0, objects: limit - 1 });
    const results = await Promise.allSettled([1, 2].map(() => db.transaction((tx) => reserve(tx, userId, "free", 1))));
    wins += results.filter((result) => result.status === "fulfilled").length;
  }
  expect(wins).toBe(ROUNDS);
}, 60_000);

test("through HTTP: two uploads racing for the last bytes, one 201 and one 409, 50 rounds", async () => {
  const { db } = s.server.platform;
  const quota = limitsFor("team").storageBytes;
  for (let round = 0; round < 50; round++) {
    const userId = newUserId();
    await db.insert(usage).values({ userId, bytes: quota - 100, objects: 0 });
    const token = await s.token(userId, "team");
    const statuses = await Promise.all(
      [1, 2].map(
        async () =>
          (await s.call("POST", "/uploads", { token, body: { name: "race", size: 60, sha256: "e".repeat(64) } }))
            .status,
      ),
    );
    expect(statuses.sort()).toEqual([201, 409]);
  }
}, 60_000);
