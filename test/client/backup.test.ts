// The SDK's backup helpers under Node 20 (the app's main process): the SDK bundled with
// `bun build --target=node`, run by `node` against a real storage service whose objects are on a
// real S3 REST server; WebCrypto and fetch are Node's own. Skipped, with the reason, without node.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decryptBackup } from "../../src/client";
import { newUserId, type Storage, startStorage } from "../storage/harness";

const NODE = Bun.which("node");
const nodeMajor = NODE ? Number(/^v(\d+)/.exec(Bun.spawnSync([NODE, "--version"]).stdout.toString())?.[1] ?? 0) : 0;
if (nodeMajor < 20)
  console.log(`skipped: the backup helpers under Node need node >= 20 on the PATH (found ${nodeMajor || "none"})`);

let s: Storage;
let out: string;
beforeAll(async () => {
  s = await startStorage("s3");
  out = mkdtempSync(join(tmpdir(), "sdk-backup-"));
  const build = Bun.spawnSync(
    ["bun", "build", "src/client/index.ts", "--target=node", "--format=esm", `--outfile=${join(out, "sdk.mjs")}`],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (build.exitCode !== 0) throw new Error(build.stderr.toString());
  writeFileSync(join(out, "main.mjs"), MAIN);
});
afterAll(async () => {
  await s.ctx.close();
  rmSync(out, { recursive: true, force: true });
});

const MAIN = `import * as sdk from "./sdk.mjs";
const [baseUrl, token, key] = process.argv.slice(2);
const api = sdk.createApiClient({ baseUrl, token });
const bytes = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
const result = { node: process.version };
try {
  const small = bytes(200000, 1);
  const stored = await sdk.uploadBackup(api, { key, deviceId: "node", data: small, chunkBytes: 65536 });
  result.small = { id: stored.id, kind: stored.kind, device: stored.backup?.device_id };
  result.smallRestored = Buffer.from(await sdk.downloadBackup(api, { id: stored.id, key })).equals(Buffer.from(small));
  const large = bytes(9 * 1024 * 1024 + 7, 2);
  const big = await sdk.uploadBackup(api, { key, deviceId: "node", data: large });
  result.largeRestored = Buffer.from(await sdk.downloadBackup(api, { id: big.id, key })).equals(Buffer.from(large));
  const blob = await sdk.encryptBackup(key, small, { chunkBytes: 4096 });
  blob[blob.length - 1] ^= 1;
  result.tampered = await sdk.decryptBackup(key, blob).then(() => "accepted", (error) => error.name);
  result.blobForBun = Buffer.from(await sdk.encryptBackup(key, bytes(1000, 3), { chunkBytes: 100 })).toString("base64");
} catch (error) {
  result.fatal = String(error?.stack ?? error);
}
console.log(JSON.stringify(result));
`;

test.skipIf(nodeMajor < 20)(
  "uploadBackup, downloadBackup, encryptBackup and decryptBackup under Node",
  async () => {
    const token = await s.token(newUserId(), "pro");
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    const child = Bun.spawn([NODE as string, join(out, "main.mjs"), s.server.url, token, key], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
    await child.exited;
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}");
    expect({ result, stderr }).toMatchObject({
      result: {
        small: { kind: "backup", device: "node" },
        smallRestored: true,
        largeRestored: true,
        tampered: "BackupFormatError",
      },
      stderr: "",
    });
    expect(result.fatal).toBeUndefined();
    expect(result.node).toStartWith("v2");
    // What Node encrypted, Bun decrypts: one format whatever the runtime.
    const fromNode = Uint8Array.from(atob(result.blobForBun), (c) => c.charCodeAt(0));
    expect(await decryptBackup(key, fromNode)).toEqual(Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 3) & 255));
  },
  60_000,
);
