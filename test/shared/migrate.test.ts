// Strategy: two real processes apply the same migrations to one fresh database at the same moment.
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestDatabase } from "../../src/shared/testing";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

const runMigrator = () =>
  Bun.spawn(["bun", "test/fixtures/migrate-once.ts"], {
    env: { ...process.env, DATABASE_URL: database.url },
    stdout: "pipe",
    stderr: "pipe",
  });

test("two processes migrating at once: each migration applied exactly once, both succeed", async () => {
  const processes = [runMigrator(), runMigrator()];
  const results = await Promise.all(
    processes.map(async (child) => ({
      code: await child.exited,
      applied: (await new Response(child.stdout).text()).trim(),
      stderr: await new Response(child.stderr).text(),
    })),
  );
  expect(results.map((result) => result.code)).toEqual([0, 0]);
  const applied = results.map((result) => JSON.parse(result.applied) as string[]).sort((a, b) => b.length - a.length);
  expect(applied).toEqual([["0000_init", "0001_more"], []]);

  const sql = postgres(database.url, { max: 1 });
  const tags = await sql`select tag from fixture.__migrations order by tag`;
  const columns =
    await sql`select column_name from information_schema.columns where table_schema = 'fixture' and table_name = 'things' order by column_name`;
  await sql.end();
  expect(tags.map((row) => row.tag)).toEqual(["0000_init", "0001_more"]);
  expect(columns.map((row) => row.column_name)).toEqual(["id", "name", "size"]);
});

test("a third run applies nothing", async () => {
  const child = runMigrator();
  expect(await child.exited).toBe(0);
  expect(JSON.parse(await new Response(child.stdout).text())).toEqual([]);
});
