// `bun run build [service...] [--outdir=dist]`: one self-contained executable per service, each
// compiled from its own entry (src/entries/<service>.ts), so it holds that service's code only and
// runs as that service whatever SERVICE_NAME says (a different one is refused).
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
      // The executables read only their environment, never a .env or bunfig.toml where they run.
      "--no-compile-autoload-dotenv",
      "--no-compile-autoload-bunfig",
      "--minify",
      "--sourcemap",
      `src/entries/${service}.ts`,
      "--outfile",
      outfile,
    ],
    { stdout: "inherit", stderr: "inherit" },
  );
  if (result.exitCode !== 0) process.exit(result.exitCode ?? 1);
  console.log(`built ${outfile}`);
}
