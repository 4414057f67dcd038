// The README is the operators' reference: its configuration table must list every variable env.ts reads.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Env } from "../../src/shared/env";

const readme = readFileSync("README.md", "utf8");

test("the configuration table lists every variable of env.ts", () => {
  const documented = new Set([...readme.matchAll(/^\| `([A-Z][A-Z0-9_]*)`/gm)].map((match) => match[1]));
  // One row may cover a family: `STRIPE_PRICE_PRO` / `_POWER` / `_TEAM`.
  for (const match of readme.matchAll(/^\| `([A-Z][A-Z0-9_]*?_)[A-Z0-9]+`((?: \/ `_[A-Z0-9]+`)+)/gm)) {
    for (const suffix of (match[2] as string).matchAll(/`_([A-Z0-9]+)`/g)) documented.add(`${match[1]}${suffix[1]}`);
  }
  expect(Object.keys(Env.shape).filter((name) => !documented.has(name))).toEqual([]);
});

test("the two commands at the top run scripts of package.json with the pinned Bun, through npx", () => {
  const manifest = JSON.parse(readFileSync("package.json", "utf8")) as {
    scripts: Record<string, string>;
    engines: { bun: string };
  };
  const top = readme.slice(0, readme.indexOf("```", readme.indexOf("```") + 3));
  // A machine with only Node.js and npm has npx, not bun: the commands must not need bun on the PATH.
  const bun = `npx -y bun@${manifest.engines.bun}`;
  expect(top).toContain(`${bun} install && ${bun} run dev`);
  expect(top).toContain(`${bun} run test`);
  expect(top.split("\n").filter((line) => /^bun /.test(line))).toEqual([]);
  expect(Object.keys(manifest.scripts)).toEqual(expect.arrayContaining(["dev", "test"]));
});
