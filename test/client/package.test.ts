// The SDK as a package: `bun run build:client` into a temporary directory, then what the app gets —
// a small ESM bundle with no server code in it, declarations that import nothing undeclared, and a
// version whose major is the protocol the server speaks. The SDK takes its wire types and close
// codes from src/protocol, the module the server parses with; this file checks it still does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloseCode,
  DEVICE_PROTOCOL,
  type JourneyConfig,
  type JourneyView,
  SDK_VERSION,
  type ServerFrame,
} from "../../src/client";
import { PROTOCOL_VERSION, CloseCode as ServerCloseCode, type ServerFrame as ServerSide } from "../../src/protocol";
import type {
  JourneyConfig as ServerJourneyConfig,
  JourneyView as ServerJourneyView,
} from "../../src/shared/journey-relay";

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameFrames: Same<ServerFrame, ServerSide> &
  Same<JourneyView, ServerJourneyView> &
  Same<JourneyConfig, ServerJourneyConfig> = true;

const root = join(import.meta.dir, "../..");
let out: string;
let build: { exitCode: number | null; output: string };

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), "sdk-package-"));
  const run = Bun.spawn(["bun", "scripts/build-client.ts", `--outdir=${out}`], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(run.stdout).text(),
    new Response(run.stderr).text(),
    run.exited,
  ]);
  build = { exitCode, output: stdout + stderr };
}, 60_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("the SDK package", () => {
  test("builds into an ESM bundle under 30 KB with no server code", () => {
    expect(build).toMatchObject({ exitCode: 0 });
    const bundle = readFileSync(join(out, "index.js"), "utf8");
    expect(bundle.length).toBeLessThan(30_000);
    const markers = ["elysia", "drizzle", "ioredis", "postgres", "bullmq", "pino", "zod", "bun:"];
    expect(markers.filter((marker) => bundle.includes(marker))).toEqual([]);
    expect(bundle).toContain("class DeviceClient");
    expect(bundle).toContain("function createApiClient");
  });

  test("leaves its one dependency, openapi-fetch, outside the bundle and declares it", () => {
    const manifest = JSON.parse(readFileSync(join(out, "package.json"), "utf8"));
    expect(manifest.dependencies).toEqual({ "openapi-fetch": expect.stringMatching(/^\^0\.17\./) });
    const bundle = readFileSync(join(out, "index.js"), "utf8");
    const imports = [...bundle.matchAll(/^\s*(?:import|export)\b[^;"']*?["']([^"']+)["']/gm)].map((match) => match[1]);
    expect(imports).toEqual(["openapi-fetch"]);
    const declarations = readFileSync(join(out, "types/client/api-client.d.ts"), "utf8");
    const specifiers = [...declarations.matchAll(/from\s+"([^"]+)"/g)].map((match) => match[1]!);
    expect(specifiers.toSorted()).toEqual(["./api-types.js", "./api-types.js", "openapi-fetch"]);
    expect(readFileSync(join(out, "types/client/api-types.d.ts"), "utf8")).toContain("export interface paths");
  });

  test("ships declarations that import only their own files and declared peers", () => {
    const manifest = JSON.parse(readFileSync(join(out, "package.json"), "utf8"));
    expect(manifest.exports).toEqual({ ".": { types: "./index.d.ts", import: "./index.js", default: "./index.js" } });
    expect(readFileSync(join(out, "index.d.ts"), "utf8")).toBe('export * from "./types/client/index.js";\n');
    const declarations = readFileSync(join(out, "types/client/device-client.d.ts"), "utf8").replace(
      /\/\*[\s\S]*?\*\//g,
      "",
    );
    expect(declarations).toContain("export declare class DeviceClient");
    const specifiers = [...declarations.matchAll(/from\s+"([^"]+)"/g)].map((match) => match[1]!);
    expect(specifiers.every((specifier) => specifier.startsWith("./") && specifier.endsWith(".js"))).toBe(true);
    expect(existsSync(join(out, "README.md"))).toBe(true);
  });

  test("its version's major is the server's protocol version", () => {
    const manifest = JSON.parse(readFileSync(join(root, "src/client/package.json"), "utf8"));
    expect({ sdk: SDK_VERSION, major: Number(SDK_VERSION.split(".")[0]), protocol: DEVICE_PROTOCOL }).toEqual({
      sdk: manifest.version,
      major: PROTOCOL_VERSION,
      protocol: PROTOCOL_VERSION,
    });
  });

  test("its close codes and frame types are the server's own (src/protocol)", () => {
    expect(CloseCode).toBe(ServerCloseCode);
    expect(sameFrames).toBe(true);
  });
});
