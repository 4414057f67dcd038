// `bun bench/import/run.ts [users=20000] [rounds=3]`: rows per second of `import` for the users
// file (and for the whole export), against peers in the same run that write the same users rows
// with the same client (postgres.js) and nothing else: a multi-row INSERT of 1000 rows per
// statement, and COPY FROM STDIN. The import does what the peers do not: a zod schema per line, the
// hash format check, a wrapped encryption key per user (AES-GCM), the reads that make it
// idempotent, one transaction per batch. Each round gets fresh databases; the order alternates.
import { readFileSync, rmSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { ALL_MIGRATIONS } from "../../src/import/all-migrations";
import { ENTITIES, type ImportReport } from "../../src/import/report";
import { runImport } from "../../src/import/run";
import { type DatabaseHandle, openDatabase } from "../../src/shared/db";
import { loadEnv } from "../../src/shared/env";
import { silentLogger } from "../../src/shared/logger";
import { createTestDatabase, testKeys } from "../../src/shared/testing";
import { FakeOpenAi } from "../../src/shared/testing/fake-openai";
import { PRO_PRICE, writeDataset } from "../../test/import/dataset";

const [usersArg, roundsArg] = process.argv.slice(2);
const USERS = Number(usersArg ?? 20_000);
const ROUNDS = Number(roundsArg ?? 3);

const data = await writeDataset(USERS, { badLines: false });
const keys = await testKeys();
const llm = new FakeOpenAi();
const userLines = readFileSync(join(data.dir, "users.jsonl"), "utf8").split("\n").filter(Boolean);

interface Sample {
  name: string;
  rows: number;
  seconds: number;
}
const samples: Sample[] = [];

async function withDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const database = await createTestDatabase();
  try {
    return await work(database.url);
  } finally {
    await database.drop();
  }
}

async function importRuns(): Promise<void> {
  await withDatabase(async (url) => {
    const env = loadEnv({
      SERVICE_NAME: "all",
      NODE_ENV: "test",
      DATABASE_URL: url,
      MASTER_KEY_FILE: keys.masterKeyFile,
      LLM_BASE_URL: llm.url,
      STRIPE_PRICE_PRO: PRO_PRICE,
    });
    const handle: DatabaseHandle = openDatabase({ url, maxConnections: 4 });
    try {
      const run = () =>
        runImport({
          db: handle.db,
          dir: data.dir,
          dryRun: false,
          env,
          logger: silentLogger(),
          migrations: ALL_MIGRATIONS,
        });
      const started = performance.now();
      const first = await run();
      record("import, first run", first, (performance.now() - started) / 1000);
      const again = performance.now();
      const second = await run();
      record("import, re-run (all unchanged)", second, (performance.now() - again) / 1000);
    } finally {
      await handle.close();
    }
  });
}

function record(name: string, report: ImportReport, totalSeconds: number): void {
  const users = report.counts.users;
  samples.push({
    name: `${name}: users`,
    rows: users.created + users.updated + users.unchanged,
    seconds: users.seconds,
  });
  const rows = ENTITIES.reduce((sum, entity) => {
    const counts = report.counts[entity];
    return sum + counts.created + counts.updated + counts.unchanged;
  }, 0);
  samples.push({ name: `${name}: every file`, rows, seconds: totalSeconds });
}

/** The rows the import writes to auth.users, as plain values: what a bare load would send. */
function bareRows() {
  return userLines.map((text) => {
    const line = JSON.parse(text) as Record<string, string | number | null>;
    return {
      id: crypto.randomUUID(),
      email: String(line.email).toLowerCase(),
      display_name: line.name ?? null,
      password_hash: String(line.password_hash),
      tier: String(line.tier ?? "free"),
      // A wrapped key's size: version, IV and sealed key in base64.
      encryption_key: `v1:${"A".repeat(16)}:${"B".repeat(64)}`,
      created_at: String(line.created_at ?? new Date().toISOString()),
    };
  });
}

const SCRATCH = `create table scratch_users (id uuid primary key, email text not null, display_name text,
  password_hash text not null, tier text not null, encryption_key text not null, created_at timestamptz not null)`;

async function peerInsert(): Promise<void> {
  await withDatabase(async (url) => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(SCRATCH);
      const started = performance.now();
      const rows = bareRows();
      for (let index = 0; index < rows.length; index += 1000) {
        await sql`insert into scratch_users ${sql(rows.slice(index, index + 1000))}`;
      }
      samples.push({
        name: "peer: multi-row INSERT (1000/statement)",
        rows: rows.length,
        seconds: (performance.now() - started) / 1000,
      });
    } finally {
      await sql.end();
    }
  });
}

async function peerCopy(): Promise<void> {
  await withDatabase(async (url) => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(SCRATCH);
      const started = performance.now();
      const rows = bareRows();
      const field = (value: string | number | null) =>
        value === null ? "\\N" : String(value).replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n");
      const text = rows.map((row) => Object.values(row).map(field).join("\t")).join("\n");
      const writable = await sql`copy scratch_users from stdin`.writable();
      await new Promise<void>((resolve, reject) => {
        writable.on("error", reject);
        writable.on("finish", resolve);
        writable.end(`${text}\n`);
      });
      samples.push({ name: "peer: COPY FROM STDIN", rows: rows.length, seconds: (performance.now() - started) / 1000 });
    } finally {
      await sql.end();
    }
  });
}

for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? [importRuns, peerInsert, peerCopy] : [peerCopy, peerInsert, importRuns];
  for (const step of order) await step();
}
await llm.close();
rmSync(data.dir, { recursive: true, force: true });

const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, Bun ${Bun.version}`;
console.log(`${USERS} users (${data.expected.users.valid} lines), ${ROUNDS} rounds, ${machine}`);
console.log("| what | rows | best rows/s | median rows/s |");
console.log("| --- | ---: | ---: | ---: |");
const names = [...new Set(samples.map((sample) => sample.name))];
for (const name of names) {
  const rates = samples
    .filter((sample) => sample.name === name)
    .map((sample) => sample.rows / sample.seconds)
    .sort((a, b) => a - b);
  const rows = samples.find((sample) => sample.name === name)?.rows ?? 0;
  const median = rates[Math.floor(rates.length / 2)] ?? 0;
  console.log(`| ${name} | ${rows} | ${Math.round(rates.at(-1) ?? 0)} | ${Math.round(median)} |`);
}
process.exit(0);
