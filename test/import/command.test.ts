// The import as an operator runs it: `bun run import` and every executable's `import` subcommand,
// their arguments, exit status and report.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVICE_NAMES } from "../../src/shared/env";
import { createTestDatabase, testKeys } from "../../src/shared/testing";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let masterKeyFile: string;
beforeAll(async () => {
  database = await createTestDatabase();
  masterKeyFile = (await testKeys()).masterKeyFile;
});
/** Every directory a test writes, removed at the end. */
const directories: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  directories.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
  await database.drop();
});

async function run(command: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = Bun.spawn(command, {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "silent", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([
    child.exited,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

const importScript = (...args: string[]) => ["bun", "scripts/import.ts", ...args];

function exportDir(files: Record<string, string[]>): string {
  const dir = tempDir("adiuva-import-cli-");
  for (const [name, lines] of Object.entries(files)) writeFileSync(join(dir, name), `${lines.join("\n")}\n`);
  return dir;
}

const user = (id: number) =>
  JSON.stringify({
    id,
    email: `cli${id}@legacy.example`,
    password_hash: `$2b$04$${"a".repeat(53)}`,
  });

describe("usage", () => {
  test("no directory, two directories or an unknown option: exit 2 with the usage", async () => {
    for (const args of [[], ["a", "b"], ["--force", "a"]]) {
      const result = await run(importScript(...args));
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain("usage: import <dir> [--dry-run]");
    }
  });

  test("every service's entry runs the subcommand (the executables are compiled from them)", async () => {
    for (const service of SERVICE_NAMES) {
      const result = await run(["bun", `src/entries/${service}.ts`, "import"]);
      expect({ service, code: result.code, usage: result.stderr.includes("usage: import") }).toEqual({
        service,
        code: 2,
        usage: true,
      });
    }
  });
});

describe("fatal errors: exit 1, one line saying why", () => {
  test("a directory that cannot be read, or holds no import file", async () => {
    const missing = await run(importScript("/nonexistent/export"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read directory /nonexistent/export: ENOENT");
    const empty = await run(importScript(tempDir("adiuva-import-empty-")));
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain("no import file in");
  });

  test("a database that does not answer", async () => {
    const dir = exportDir({ "users.jsonl": [user(1)] });
    const result = await run(importScript(dir), {
      DATABASE_URL: "postgres://postgres@127.0.0.1:1/adiuva",
      DATABASE_WAIT_MS: "1000",
      MASTER_KEY_FILE: masterKeyFile,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("PostgreSQL at 127.0.0.1:1");
  });

  test("no DATABASE_URL: the import needs a PostgreSQL, not the development server's embedded one", async () => {
    const result = await run(importScript(exportDir({ "users.jsonl": [user(1)] })), { MASTER_KEY_FILE: masterKeyFile });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("DATABASE_URL must be set for the import");
  });

  test("users.jsonl without MASTER_KEY_FILE: imported users need their encryption key wrapped", async () => {
    const dir = exportDir({ "users.jsonl": [user(1)] });
    const result = await run(importScript(dir), { DATABASE_URL: database.url });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("MASTER_KEY_FILE");
  });
});

describe("a run", () => {
  test("exits 0 with skipped lines, lists each with file:line, counts per entity; a dry run first writes nothing", async () => {
    // A byte order mark, as some exporters write one, is not part of the first line.
    const dir = exportDir({ "users.jsonl": [`\uFEFF${user(1)}`, "{oops", user(2), user(3)] });
    const env = { DATABASE_URL: database.url, MASTER_KEY_FILE: masterKeyFile };
    const dry = await run(importScript(dir, "--dry-run"), env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("dry run: nothing was written");
    expect(dry.stdout).toMatch(/^users\s+3\s+0\s+0\s+1\s/m);

    const first = await run(importScript(dir), env);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain("users.jsonl:2: malformed JSON");
    expect(first.stdout).toMatch(/^users\s+3\s+0\s+0\s+1\s/m);
    expect(first.stdout).toMatch(/^memories\s+-\s+-\s+-\s+-\s+no file$/m);
    expect(first.stdout).toContain("1 line(s) skipped");

    const again = await run(importScript(dir), env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^users\s+0\s+0\s+3\s+1\s/m);
  });
});

describe("from an executable's entry: its own schema only", () => {
  test("a file whose schema is neither there nor the executable's stops the run before any write", async () => {
    const empty = await createTestDatabase();
    try {
      const env = { DATABASE_URL: empty.url, MASTER_KEY_FILE: masterKeyFile };
      const users = exportDir({ "users.jsonl": [user(1), user(2)] });
      const refused = await run(["bun", "src/entries/billing.ts", "import", users], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("schemas missing: auth (for users.jsonl)");

      const imported = await run(["bun", "src/entries/auth.ts", "import", users], env);
      expect(imported.code).toBe(0);
      expect(imported.stdout).toMatch(/^users\s+2\s+0\s+0\s+0\s/m);

      const subscription = JSON.stringify({
        id: "sub_cli1",
        user_id: 1,
        customer_id: "cus_cli1",
        status: "active",
        tier: "pro",
        created_at: "2024-01-01T00:00:00Z",
      });
      const billing = await run(
        ["bun", "src/entries/billing.ts", "import", exportDir({ "subscriptions.jsonl": [subscription] })],
        env,
      );
      expect(billing.code).toBe(0);
      expect(billing.stdout).toMatch(/^subscriptions\s+1\s+0\s+0\s+0\s/m);
    } finally {
      await empty.drop();
    }
  });
});
