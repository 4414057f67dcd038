// What the capacity benchmarks share: a private redis-server (so its CPU, memory and command counts
// hold only the benchmark's traffic), CPU and memory of a process from /proc, PostgreSQL's write
// counters of one database, and a proxy in front of PostgreSQL that counts a service's statements.
import { readdirSync, readFileSync } from "node:fs";
import { Redis } from "ioredis";
import postgres from "postgres";

/** utime + stime of a process (all its threads) so far, in µs (Linux /proc, 100 ticks per second). */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Resident memory of a process, in bytes (VmRSS). */
export function processRss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) * 1024;
}

/** The hard limit on open files of a process, and how many it has open now. */
export function fileDescriptors(pid: number): { hardLimit: number; open: number } {
  const limits = readFileSync(`/proc/${pid}/limits`, "utf8");
  const hardLimit = Number(/Max open files\s+\d+\s+(\d+)/.exec(limits)?.[1]);
  const open = readdirSync(`/proc/${pid}/fd`).length;
  return { hardLimit, open };
}

export interface CommandCounts {
  calls: number;
  /** Time Redis spent executing them (INFO commandstats usec). */
  usec: number;
  byCommand: Map<string, number>;
  usecByCommand: Map<string, number>;
}

export interface PrivateRedis {
  url: string;
  pid: number;
  admin: Redis;
  /** Command counts since start (INFO and CONFIG excluded: the benchmark's own probes). */
  commands(): Promise<CommandCounts>;
  usedMemory(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts `redis-server` on a free port without persistence; stopped by `stop()` or this process's exit. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child = Bun.spawn(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdout: "ignore", stderr: "inherit" },
  );
  const stopOnExit = () => child.kill("SIGKILL");
  process.on("exit", stopOnExit);
  const url = `redis://127.0.0.1:${port}`;
  let admin: Redis | undefined;
  for (let attempt = 0; !admin; attempt++) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on("error", () => {});
    try {
      await client.connect();
      admin = client;
    } catch (error) {
      client.disconnect();
      if (attempt > 100) throw error;
      await Bun.sleep(100);
    }
  }
  const connected = admin;
  if (!(await connected.info("server")).includes(`process_id:${child.pid}`)) {
    throw new Error(`port ${port} is served by another Redis than the one started here`);
  }
  return {
    url,
    pid: child.pid,
    admin: connected,
    async commands() {
      const counts: CommandCounts = { calls: 0, usec: 0, byCommand: new Map(), usecByCommand: new Map() };
      for (const line of (await connected.info("commandstats")).split("\n")) {
        const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
        if (!match || match[1] === "info" || match[1]?.startsWith("config")) continue;
        counts.calls += Number(match[2]);
        counts.usec += Number(match[3]);
        counts.byCommand.set(match[1]!, Number(match[2]));
        counts.usecByCommand.set(match[1]!, Number(match[3]));
      }
      return counts;
    },
    async usedMemory() {
      return Number(/used_memory:(\d+)/.exec(await connected.info("memory"))?.[1]);
    },
    async stop() {
      connected.disconnect();
      child.kill("SIGTERM");
      await child.exited;
      process.off("exit", stopOnExit);
    },
  };
}

/** A port nobody listens on now (the OS picks it). */
async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = server;
  server.stop(true);
  return port;
}

/**
 * The difference of two command counts, per unit of work. `usecByCommand` is Redis's own execution
 * time per command name (a script's includes the commands it runs, which are also counted apart).
 */
export function commandsPer(before: CommandCounts, after: CommandCounts, units: number) {
  const byCommand: Record<string, number> = {};
  const usecByCommand: Record<string, number> = {};
  for (const [name, calls] of after.byCommand) {
    const delta = calls - (before.byCommand.get(name) ?? 0);
    if (delta > 0) byCommand[name] = Number((delta / units).toFixed(3));
    const usec = (after.usecByCommand.get(name) ?? 0) - (before.usecByCommand.get(name) ?? 0);
    if (usec > 0) usecByCommand[name] = Number((usec / units).toFixed(3));
  }
  return {
    calls: (after.calls - before.calls) / units,
    usec: (after.usec - before.usec) / units,
    byCommand,
    usecByCommand,
  };
}

export interface WriteCounters {
  commits: number;
  rollbacks: number;
  inserted: number;
  updated: number;
  deleted: number;
  /** Rows inserted, updated and deleted per table ("schema.table"). */
  tables: Map<string, { inserted: number; updated: number; deleted: number }>;
}

/**
 * PostgreSQL's counters for one database (pg_stat_database, pg_stat_user_tables), read from a
 * connection to that database. A backend reports its counters when it goes idle (at most once a
 * second, else within PGSTAT_IDLE_INTERVAL, 10 s) or exits: read after the writers have been idle
 * that long, or have ended.
 */
export async function writeCounters(databaseUrl: string): Promise<WriteCounters> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    // A fresh snapshot: this connection's view of the statistics is taken once per transaction.
    const [database] = await sql<Array<Record<string, string>>>`
      select xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
      from pg_stat_database where datname = current_database()`;
    const rows = await sql<Array<Record<string, string>>>`
      select schemaname || '.' || relname as name, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables`;
    const tables = new Map<string, { inserted: number; updated: number; deleted: number }>();
    for (const row of rows) {
      tables.set(row.name!, {
        inserted: Number(row.n_tup_ins),
        updated: Number(row.n_tup_upd),
        deleted: Number(row.n_tup_del),
      });
    }
    return {
      commits: Number(database!.xact_commit),
      rollbacks: Number(database!.xact_rollback),
      inserted: Number(database!.tup_inserted),
      updated: Number(database!.tup_updated),
      deleted: Number(database!.tup_deleted),
      tables,
    };
  } finally {
    await sql.end();
  }
}

/** Writes between two readings, per unit of work; tables with no change are left out. */
export function writesPer(before: WriteCounters, after: WriteCounters, units: number) {
  const per = (a: number, b: number) => Number(((b - a) / units).toFixed(3));
  const tables: Record<string, string> = {};
  for (const [name, counts] of after.tables) {
    const old = before.tables.get(name) ?? { inserted: 0, updated: 0, deleted: 0 };
    const row = [
      per(old.inserted, counts.inserted),
      per(old.updated, counts.updated),
      per(old.deleted, counts.deleted),
    ];
    if (row.some((value) => value !== 0)) tables[name] = `ins ${row[0]} / upd ${row[1]} / del ${row[2]}`;
  }
  return {
    commits: per(before.commits, after.commits),
    rollbacks: per(before.rollbacks, after.rollbacks),
    inserted: per(before.inserted, after.inserted),
    updated: per(before.updated, after.updated),
    deleted: per(before.deleted, after.deleted),
    tables,
  };
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** JSON lines from a child's stdout, one at a time, keeping whatever arrived past the last one. */
export class JsonLines {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffered = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  async next<T = Record<string, unknown>>(): Promise<T> {
    while (!this.buffered.includes("\n")) {
      const { value, done } = await this.reader.read();
      if (done) throw new Error(`process ended before answering: ${this.buffered}`);
      this.buffered += this.decoder.decode(value, { stream: true });
    }
    const end = this.buffered.indexOf("\n");
    const line = this.buffered.slice(0, end);
    this.buffered = this.buffered.slice(end + 1);
    return JSON.parse(line) as T;
  }
}

export interface StatementCounts {
  /** Statements executed, by first keyword (select, insert, update, delete, begin, commit, ...). */
  byKind: Map<string, number>;
  /** Transactions that wrote: committed ones with a write inside, and writes outside any transaction. */
  writeTransactions: number;
}

/**
 * A TCP proxy in front of PostgreSQL that reads the client side of the wire protocol and counts
 * the statements each connection executes (Execute of a parsed statement, or a simple Query) and
 * the transactions that write. `url` is the database URL to give the service instead of `target`.
 */
export async function startStatementCounter(target: string): Promise<{
  url: string;
  counts(): StatementCounts;
  stop(): Promise<void>;
}> {
  const { createConnection, createServer } = await import("node:net");
  const upstream = new URL(target);
  const totals: StatementCounts = { byKind: new Map(), writeTransactions: 0 };
  const sockets = new Set<{ destroy(): void }>();
  const server = createServer((client) => {
    const server = createConnection({ host: upstream.hostname, port: Number(upstream.port || 5432) });
    sockets.add(client);
    sockets.add(server);
    client.pipe(server);
    server.pipe(client);
    const close = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on("error", close);
    server.on("error", close);
    client.on("close", close);
    server.on("close", close);
    const reader = new FrontendReader(totals);
    client.on("data", (chunk: Buffer) => reader.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    counts: () => ({ byKind: new Map(totals.byKind), writeTransactions: totals.writeTransactions }),
    // Connections still open (a pool not yet closed) are cut: the proxy's end is their end.
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

const WRITES = new Set(["insert", "update", "delete", "merge"]);

/** The frontend messages of one connection: startup first, then type byte + length + body. */
class FrontendReader {
  private buffered: Buffer = Buffer.alloc(0);
  private started = false;
  private readonly statements = new Map<string, string>();
  private readonly portals = new Map<string, string>();
  private inTransaction = false;
  private wrote = false;

  constructor(private readonly totals: StatementCounts) {}

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    for (;;) {
      if (!this.started) {
        if (this.buffered.length < 4) return;
        const length = this.buffered.readInt32BE(0);
        if (this.buffered.length < length) return;
        // An SSLRequest (8 bytes, code 80877103) comes before the real startup message.
        if (!(length === 8 && this.buffered.readInt32BE(4) === 80877103)) this.started = true;
        this.buffered = this.buffered.subarray(length);
        continue;
      }
      if (this.buffered.length < 5) return;
      const length = this.buffered.readInt32BE(1);
      if (this.buffered.length < 1 + length) return;
      this.message(String.fromCharCode(this.buffered[0]!), this.buffered.subarray(5, 1 + length));
      this.buffered = this.buffered.subarray(1 + length);
    }
  }

  private message(type: string, body: Buffer): void {
    const strings = () => body.toString("utf8").split("\0");
    if (type === "P") {
      const [name = "", query = ""] = strings();
      this.statements.set(name, query);
    } else if (type === "B") {
      const [portal = "", statement = ""] = strings();
      this.portals.set(portal, this.statements.get(statement) ?? "");
    } else if (type === "E") {
      const [portal = ""] = strings();
      this.executed(this.portals.get(portal) ?? "");
    } else if (type === "Q") {
      for (const query of (strings()[0] ?? "").split(";")) if (query.trim()) this.executed(query);
    }
  }

  private executed(query: string): void {
    const words = query.trim().toLowerCase().split(/\s+/);
    let kind = words[0] ?? "";
    if (kind === "with") kind = words.find((word) => WRITES.has(word)) ? "with (writing)" : "with (reading)";
    if (kind === "start") kind = "begin";
    if (kind === "end") kind = "commit";
    this.totals.byKind.set(kind, (this.totals.byKind.get(kind) ?? 0) + 1);
    const writes = WRITES.has(kind) || kind === "with (writing)";
    if (kind === "begin") {
      this.inTransaction = true;
      this.wrote = false;
    } else if (kind === "commit") {
      if (this.inTransaction && this.wrote) this.totals.writeTransactions++;
      this.inTransaction = false;
    } else if (kind === "rollback") {
      this.inTransaction = false;
    } else if (writes) {
      if (this.inTransaction) this.wrote = true;
      else this.totals.writeTransactions++;
    }
  }
}

/** The difference of two statement counts, per unit of work. */
export function statementsPer(before: StatementCounts, after: StatementCounts, units: number) {
  const byKind: Record<string, number> = {};
  for (const [kind, count] of after.byKind) {
    const delta = count - (before.byKind.get(kind) ?? 0);
    if (delta > 0) byKind[kind] = Number((delta / units).toFixed(3));
  }
  return { writeTransactions: (after.writeTransactions - before.writeTransactions) / units, byKind };
}

/** startStatementCounter in a process of its own (bench/capacity/statement-counter.ts). */
export async function spawnStatementCounter(target: string): Promise<{
  url: string;
  counts(): Promise<StatementCounts>;
  stop(): Promise<void>;
}> {
  const child = Bun.spawn(["bun", `${import.meta.dir}/statement-counter.ts`, target], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = new JsonLines(child.stdout);
  const { url } = await lines.next<{ url: string }>();
  return {
    url,
    async counts() {
      child.stdin.write("counts\n");
      child.stdin.flush();
      const answer = await lines.next<{ byKind: Record<string, number>; writeTransactions: number }>();
      return { byKind: new Map(Object.entries(answer.byKind)), writeTransactions: answer.writeTransactions };
    },
    async stop() {
      child.stdin.write("stop\n");
      child.stdin.flush();
      await Promise.race([child.exited, Bun.sleep(2000)]);
      child.kill("SIGKILL");
      await child.exited;
    },
  };
}
