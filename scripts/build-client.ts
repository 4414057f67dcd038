// `bun run build:client [--outdir=dist/client]`: the device SDK as a package the app depends on — one
// ESM bundle (index.js) for Node and Chromium alike, its declarations (tsc, src/client/tsconfig.json),
// its package.json and README. Its `dependencies` (openapi-fetch) stay outside the bundle and are
// installed with the package. Fails when the bundle or the declarations reach outside the SDK.
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { DEVICE_PROTOCOL, SDK_VERSION } from "../src/client/protocol";

/** Strings that only server code brings into a bundle. */
const SERVER_MARKERS = ["elysia", "drizzle", "ioredis", "postgres", "bullmq", "pino", "zod", "bun:"];

const root = join(import.meta.dir, "..");
const args = process.argv.slice(2);
const outdir = resolve(
  root,
  args.find((arg) => arg.startsWith("--outdir="))?.slice("--outdir=".length) || "dist/client",
);

const manifest = JSON.parse(readFileSync(join(root, "src/client/package.json"), "utf8"));
if (manifest.version !== SDK_VERSION || Number(SDK_VERSION.split(".")[0]) !== DEVICE_PROTOCOL) {
  fail(`src/client/package.json ${manifest.version}, SDK_VERSION ${SDK_VERSION}, protocol ${DEVICE_PROTOCOL} disagree`);
}

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const built = await Bun.build({
  entrypoints: [join(root, "src/client/index.ts")],
  outdir,
  target: "browser",
  format: "esm",
  sourcemap: "linked",
  external: Object.keys(manifest.dependencies ?? {}),
});
if (!built.success) fail(built.logs.map(String).join("\n"));
const bundle = readFileSync(join(outdir, "index.js"), "utf8");
const leaked = SERVER_MARKERS.filter((marker) => bundle.includes(marker));
if (leaked.length > 0) fail(`server code in the bundle: ${leaked.join(", ")}`);
const undeclared = bundleImports(bundle).filter((specifier) => !(specifier in (manifest.dependencies ?? {})));
if (undeclared.length > 0) fail(`the bundle imports packages the SDK does not declare: ${undeclared.join(", ")}`);

const tsc = Bun.spawnSync(
  [
    process.execPath,
    join(root, "node_modules/typescript/bin/tsc"),
    "-p",
    "src/client/tsconfig.json",
    "--declarationDir",
    join(outdir, "types"),
  ],
  { cwd: root, stdout: "inherit", stderr: "inherit" },
);
if (tsc.exitCode !== 0) fail("tsc failed on src/client");
const declared = { ...manifest.dependencies, ...manifest.peerDependencies };
const outside = declarationImports(join(outdir, "types")).filter(
  (specifier) => !specifier.startsWith(".") && !(specifier in declared),
);
if (outside.length > 0) fail(`declarations import packages the SDK does not declare: ${outside.join(", ")}`);
addJsExtensions(join(outdir, "types"));
writeFileSync(join(outdir, "index.d.ts"), 'export * from "./types/client/index.js";\n');

writeFileSync(
  join(outdir, "package.json"),
  `${JSON.stringify(
    {
      ...manifest,
      main: "./index.js",
      module: "./index.js",
      types: "./index.d.ts",
      exports: { ".": { types: "./index.d.ts", import: "./index.js", default: "./index.js" } },
      sideEffects: false,
    },
    null,
    2,
  )}\n`,
);
cpSync(join(root, "src/client/README.md"), join(outdir, "README.md"));

console.log(
  `built ${relative(root, outdir)}: index.js ${statSync(join(outdir, "index.js")).size} bytes, SDK ${SDK_VERSION} (protocol ${DEVICE_PROTOCOL})`,
);

/** The packages the bundle imports (its own code is all inside it). */
function bundleImports(code: string): string[] {
  const found = new Set<string>();
  for (const match of code.matchAll(/^\s*(?:import|export)\b[^;"']*?["']([^"']+)["']/gm)) found.add(match[1]!);
  for (const match of code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) found.add(match[1]!);
  return [...found];
}

/** Every module specifier the emitted declarations import or re-export. */
function declarationImports(dir: string): string[] {
  const found = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (!entry.endsWith(".d.ts")) continue;
    const text = readFileSync(join(dir, entry), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) found.add(match[1]!);
  }
  return [...found];
}

/** `./x` → `./x.js` in the declarations, as Node's ESM resolution (TypeScript's `nodenext`) requires. */
function addJsExtensions(dir: string): void {
  for (const entry of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (!entry.endsWith(".d.ts")) continue;
    const file = join(dir, entry);
    const text = readFileSync(file, "utf8").replace(
      /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+?)(["'])/g,
      (whole, head: string, specifier: string, tail: string) =>
        /\.(js|mjs|cjs|json)$/.test(specifier) ? whole : `${head}${specifier}.js${tail}`,
    );
    writeFileSync(file, text);
  }
}

function fail(message: string): never {
  console.error(`build:client: ${message}`);
  process.exit(1);
}
