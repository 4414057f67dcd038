// `bun run build [service...] [--outdir=dist]`: one self-contained executable per service, each
// defaulting SERVICE_NAME to its own.
import { rmSync } from "node:fs";
import { SERVICE_NAMES } from "../src/shared/env";

const args = process.argv.slice(2);
const outdir = args.find((arg) => arg.startsWith("--outdir="))?.slice("--outdir=".length) || "dist";
const only = args.filter((arg) => !arg.startsWith("--"));
const services = only.length > 0 ? only : [...SERVICE_NAMES];
// Stale executables of removed services must not linger in dist/; elsewhere only our own files go.
if (outdir === "dist") rmSync(outdir, { recursive: true, force: true });
for (const service of services) {
  if (!(SERVICE_NAMES as readonly string[]).includes(service)) {
    console.error(`unknown service ${service}; expected one of ${SERVICE_NAMES.join(", ")}`);
    process.exit(2);
  }
  const outfile = `${outdir}/${service}-service`;
  const result = Bun.spawnSync(
    [
      "bun",
      "build",
      "--compile",
      "--minify",
      "--sourcemap",
      `--define`,
      `process.env.DEFAULT_SERVICE_NAME=${JSON.stringify(service)}`,
      "src/main.ts",
      "--outfile",
      outfile,
    ],
    { stdout: "inherit", stderr: "inherit" },
  );
  if (result.exitCode !== 0) process.exit(result.exitCode ?? 1);
  console.log(`built ${outfile}`);
}
