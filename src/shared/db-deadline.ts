import type postgres from "postgres";
import { databaseUnavailable } from "./errors";

/**
 * Puts a deadline on waiting for a connection. postgres.js keeps a query queued, without end, while
 * its connection attempts are accepted and then dropped (a restarting server, a proxy in front of a
 * dead one): requests hung until the database came back. A query not under way after `waitMs` is
 * cancelled, which rejects it with 57014 at once (a query already running is left to the server's
 * `statement_timeout`). A transaction that has no connection after `waitMs` is abandoned the same
 * way: its callback, should a connection come later, throws before running anything.
 */
export function withConnectionDeadline(client: postgres.Sql, waitMs: number): postgres.Sql {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "unsafe") {
        return (...args: Parameters<postgres.Sql["unsafe"]>) => cancelWhenLate(target.unsafe(...args), waitMs);
      }
      if (property === "begin") {
        return (...args: unknown[]) => beginWithDeadline(target, args, waitMs);
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

function cancelWhenLate<T extends { cancel(): unknown; then: Promise<unknown>["then"] }>(query: T, waitMs: number): T {
  const timer = setTimeout(() => void query.cancel(), waitMs);
  // The caller handles the query's own outcome; this branch only clears the timer.
  query.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  return query;
}

type TransactionCallback = (sql: postgres.TransactionSql) => unknown;

function beginWithDeadline(target: postgres.Sql, args: unknown[], waitMs: number): Promise<unknown> {
  const callback = args.at(-1) as TransactionCallback;
  const options = args.length > 1 ? [args[0]] : [];
  let started = false;
  let abandoned = false;
  const transaction = (target.begin as (...a: unknown[]) => Promise<unknown>)(
    ...options,
    (sql: postgres.TransactionSql) => {
      if (abandoned) throw databaseUnavailable();
      started = true;
      return callback(
        withConnectionDeadline(sql as unknown as postgres.Sql, waitMs) as unknown as postgres.TransactionSql,
      );
    },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (started) return;
      abandoned = true;
      reject(Object.assign(new Error("no database connection within the deadline"), { code: "CONNECT_TIMEOUT" }));
    }, waitMs);
    transaction.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
