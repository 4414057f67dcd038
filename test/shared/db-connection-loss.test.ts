// A PostgreSQL connection lost in the middle of a transaction. Strategy: the database is reached
// through a TcpProxy the test cuts while a transaction waits on a statement; the driver then tries
// to roll back on the dead connection. That must end as a rejected transaction, never as an
// exception thrown outside any request (which would take a service process down).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { openDatabase } from "../../src/shared/db";
import { createTestDatabase, eventually, TcpProxy, viaProxy } from "../../src/shared/testing";

const ROUNDS = 10;
const proxy = new TcpProxy("127.0.0.1", 5432);
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let direct: postgres.Sql;
beforeAll(async () => {
  database = await createTestDatabase();
  direct = postgres(database.url, { max: 1, onnotice: () => {} });
  proxy.start();
});
afterAll(async () => {
  proxy.stop();
  await direct.end();
  await database.drop();
});

/** The transaction's statement, as PostgreSQL sees it running. */
const sleeping = async (tag: string) =>
  Number(
    (
      await direct`select count(*) from pg_stat_activity where query like ${`%pg_sleep(5) -- ${tag}%`} and pid <> pg_backend_pid()`
    )[0]?.count,
  );

describe("a connection lost inside a transaction", () => {
  test(`rejects the transaction and nothing else, ${ROUNDS} rounds`, async () => {
    const outcomes: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      proxy.resume();
      const tag = `round-${round}-${crypto.randomUUID()}`;
      const handle = openDatabase({ url: viaProxy(database.url, proxy.port), connectionWaitMs: 1000 });
      const transaction = handle.db
        .transaction(async (tx) => {
          await tx.execute(sql`select 1`);
          await tx.execute(sql.raw(`select pg_sleep(5) -- ${tag}`));
        })
        .then(
          () => "committed",
          (error: { code?: string; cause?: { code?: string } }) => error.cause?.code ?? error.code ?? "error",
        );
      // Cut while the transaction waits on its statement.
      await eventually(
        () => sleeping(tag),
        (count) => count > 0,
      );
      proxy.cut();
      outcomes.push(await transaction);
      // The driver's rollback would be written from a timer: let it run inside this round.
      for (let turn = 0; turn < 3; turn++) await new Promise(setImmediate);
      // Closing waits for the pool's other connections; the next round does not need to.
      void handle.close().catch(() => {});
    }
    expect(outcomes.filter((outcome) => outcome === "committed")).toEqual([]);
  }, 60_000);
});
